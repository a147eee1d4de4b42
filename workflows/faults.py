"""Named points in the workflows where a test harness may act: crash, pause or fail right there.

Nothing happens unless a harness has armed a handler (``tests/support/faults.py`` does, for the fault
suite's subprocesses); the library itself never reads the environment for this, so no command pays
for it at start-up. The points, in the order ``adapters train`` reaches them, are listed in
``POINTS``; the store's own points (blob and manifest writes, registry transactions) are wired by the
harness through ``registry_opened``.
"""

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from loraledger.registry import Registry

_point_handlers: list[Callable[[str], None]] = []
_registry_handlers: list[Callable[["Registry"], None]] = []


def arm(on_point: Callable[[str], None], on_registry: Callable[["Registry"], None]) -> None:
    """Call ``on_point(name)`` at every point and ``on_registry(registry)`` on every registry opened."""
    if on_point not in _point_handlers:
        _point_handlers.append(on_point)
    if on_registry not in _registry_handlers:
        _registry_handlers.append(on_registry)


def point(name: str) -> None:
    for handler in _point_handlers:
        handler(name)


def registry_opened(registry: "Registry") -> None:
    for handler in _registry_handlers:
        handler(registry)

"""Fault injection for the tests: make a command crash, pause or fail at a named point.

``ADAPTERS_FAULT=POINT:ACTION[,POINT:ACTION...]`` (``POINT@N:ACTION`` acts on the N-th time the point
is reached; default the first). The fault suite uses it to crash the real CLI at the worst moments
deterministically, without sleeps. It is read only by the test harness: ``python -m support.adapters_command``
(what ``cli_process`` runs) arms the library's points (``loraledger.faults``) from it, then runs
the real ``adapters`` main; the installed command never looks at it.

Points, in the order ``adapters train`` reaches them:

- ``train-step``       a training step has been logged
- ``trained``          the adapter is saved in its run folder; nothing is stored yet
- ``blob-write``       a blob's bytes are written (temporary name or pending PUT), not yet visible
- ``manifest-write``   the same for an artifact's manifest, once all its blobs are stored
- ``retention-candidate`` a retention-budget candidate is scored (before anything is registered)
- ``before-register``  the artifact and datasets are stored; nothing is registered yet
- ``retention-register`` the raw update is registered, held back; its chosen candidate is next
- ``write-begin``      a registry write transaction is about to begin (any command that writes)
- ``register-commit``  the transaction registering a version has run its inserts; COMMIT is next

Actions: ``kill`` (SIGKILL itself: no cleanup, like ``kill -9`` or a power cut for this process),
``stop`` (SIGSTOP itself, so a test can kill or resume it from outside at exactly that point),
``enospc`` (raise ``OSError(ENOSPC)``, a full disk), ``error`` (raise ``RuntimeError``).
"""

import errno
import os
import signal
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from loraledger.registry import Registry

ENV = "ADAPTERS_FAULT"
POINTS = (
    "train-step",
    "trained",
    "blob-write",
    "manifest-write",
    "retention-candidate",
    "before-register",
    "retention-register",
    "write-begin",
    "register-commit",
)
ACTIONS = ("kill", "stop", "enospc", "error")


@dataclass
class Faults:
    plan: dict[str, tuple[int, str]] = field(default_factory=dict)
    reached: Counter[str] = field(default_factory=Counter)

    def point(self, name: str) -> None:
        if name not in self.plan:
            return
        self.reached[name] += 1
        occurrence, action = self.plan[name]
        if self.reached[name] != occurrence:
            return
        if action == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        elif action == "stop":
            os.kill(os.getpid(), signal.SIGSTOP)
        elif action == "enospc":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        else:
            raise RuntimeError(f"fault injected at {name} ({ENV})")


_active = Faults()


def configure(spec: str | None) -> None:
    """Read ``ADAPTERS_FAULT``'s value; called each time a registry is opened."""
    global _active
    _active = parse(spec)


def parse(spec: str | None) -> Faults:
    faults = Faults()
    for item in (spec or "").split(","):
        if not item.strip():
            continue
        where, _, action = item.strip().rpartition(":")
        name, _, count = where.partition("@")
        if name not in POINTS or action not in ACTIONS or (count and not count.isdigit()):
            from loraledger.schemas.errors import InvalidInput

            raise InvalidInput(
                f"invalid {ENV} item {item!r}: use POINT[@N]:ACTION with POINT one of {', '.join(POINTS)} "
                f"and ACTION one of {', '.join(ACTIONS)}"
            )
        faults.plan[name] = (int(count or 1), action)
    return faults


def point(name: str) -> None:
    _active.point(name)


def _registry_opened(registry: "Registry") -> None:
    # Each command opens its registry once: read the plan then, as the CLI used to at start-up.
    configure(os.environ.get(ENV))
    install(registry)


def arm_from_environment() -> None:
    """Hook the library's points (``loraledger.faults``) to the plan in ``ADAPTERS_FAULT``, read
    afresh whenever a registry is opened. Arming twice is harmless."""
    from loraledger import faults as library_points

    library_points.arm(point, _registry_opened)


def install(registry: "Registry") -> None:
    """Wire the points that live below the CLI: artifact writes and registry transactions."""
    if not _active.plan:
        return
    registry.artifacts.write_hook = lambda kind, _target: point(f"{kind}-write")
    from sqlalchemy import event

    engine = getattr(registry.store, "engine", None)
    if engine is None:
        return

    def begin(connection: Any) -> None:
        # PostgreSQL takes no lock at BEGIN; SQLite's write transactions start with the statement below.
        if connection.dialect.name != "sqlite" and connection.get_execution_options().get("loraledger_write"):
            point("write-begin")

    def before_execute(connection: Any, _cursor: Any, statement: str, *_: Any) -> None:
        words = statement.lstrip().upper()
        if words.startswith("BEGIN IMMEDIATE"):
            point("write-begin")  # before the lock is taken, so a stopped process holds none
        elif words.startswith("INSERT INTO VERSION "):
            connection.info["loraledger_registering"] = True

    def commit(connection: Any) -> None:
        if connection.info.pop("loraledger_registering", False):
            point("register-commit")

    def rollback(connection: Any) -> None:
        connection.info.pop("loraledger_registering", None)

    event.listen(engine, "begin", begin)
    event.listen(engine, "before_cursor_execute", before_execute)
    event.listen(engine, "commit", commit)
    event.listen(engine, "rollback", rollback)

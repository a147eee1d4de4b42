"""Two consoles: data on stdout, progress, warnings and errors on stderr."""

import json
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console


def _console(stderr: bool) -> "Console":
    from loraledger.cli.terminal import SafeConsole

    # Every human-readable line goes through here: SafeConsole escapes the data's control characters.
    return SafeConsole(stderr=stderr, highlight=False, soft_wrap=False)


class _Lazy:
    """Rich is imported on first use, keeping `adapters --help` fast."""

    def __init__(self, stderr: bool) -> None:
        self.stderr = stderr
        self._console: Console | None = None

    def get(self) -> "Console":
        if self._console is None:
            self._console = _console(self.stderr)
        return self._console


_out = _Lazy(stderr=False)
_err = _Lazy(stderr=True)


def out() -> "Console":
    return _out.get()


def err() -> "Console":
    return _err.get()


def reset() -> None:
    """Forget the consoles (tests swap sys.stdout between invocations)."""
    _out._console = None
    _err._console = None


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, default=str, sort_keys=False) + "\n")


def warn(message: str) -> None:
    from rich.markup import escape

    # Messages carry user text (paths, names): "[/x]" in one must be shown, not parsed as markup.
    err().print(f"[yellow]warning:[/] {escape(message)}")


def note(message: str) -> None:
    err().print(message, markup=False)


def stage(message: str) -> None:
    """A step of long work, dimmed on stderr; the message (paths, names) is text, never markup."""
    from rich.markup import escape

    err().print(f"[dim]{escape(message)}[/]")

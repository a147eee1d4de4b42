"""What a user typed never drives the terminal: control characters are shown, not sent.

A reason, a note, a user name, a file name or an error message can hold ESC sequences (clear the
screen, retitle the window, fake a colour) or a line break that starts a fake row. Every human-readable
renderer writes through ``printable``: the consoles of ``cli.output`` filter each rendered segment, the
fixed-width listings escape each cell, the error handler escapes its line. ``--json`` output is not
touched: JSON escapes control characters itself and keeps the exact text.
"""

import re
from collections.abc import Iterable
from typing import Any

from rich.console import Console, ConsoleOptions, RenderableType
from rich.segment import Segment

# C0 controls, DEL, C1 controls (0x9b is a one-byte CSI on some terminals) and the bidirectional
# overrides and isolates that reorder what a reader sees ("Trojan Source").
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_UNSAFE_BUT_NEWLINE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    character = match.group()
    if character in _NAMED:
        return _NAMED[character]
    code = ord(character)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str, *, keep_newlines: bool = False) -> str:
    """``text`` with every control character written as an escape (``\\x1b``, ``\\n``, ``\\u202e``).

    Idempotent: an escaped text holds no control character, so escaping it again changes nothing.
    ``keep_newlines`` is for whole renderings, whose line ends are the renderer's own.
    """
    pattern = _UNSAFE_BUT_NEWLINE if keep_newlines else _UNSAFE
    if pattern.search(text) is None:  # the common case: one scan, no copy
        return text
    return pattern.sub(_escape, text)


class SafeConsole(Console):
    """A rich Console whose rendered text carries no control character of the data's own.

    rich's styles are added after rendering, from each segment's style, and its cursor moves are
    ``control`` segments: both pass. Text inside segments is data and is escaped. (rich itself strips
    only BEL, BS, VT, FF and CR; ESC goes through.)
    """

    def render(self, renderable: RenderableType, options: ConsoleOptions | None = None) -> Iterable[Segment]:
        for segment in super().render(renderable, options):
            if segment.control or _UNSAFE_BUT_NEWLINE.search(segment.text) is None:
                yield segment
            else:
                yield Segment(printable(segment.text, keep_newlines=True), segment.style, segment.control)


class EscapingWriter:
    """A text stream wrapper for writers that bypass rich (click's usage errors): escapes all but line
    ends."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        return int(self.stream.write(printable(text, keep_newlines=True)))

    def flush(self) -> None:
        self.stream.flush()

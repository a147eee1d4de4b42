"""Fixed-width listings that stay fast at thousands of rows.

rich's ``Table`` measures and wraps every cell: 10,000 versions take over ten seconds to draw. A
``Listing`` is a rich renderable too (``console.print(listing)``), but it sizes each column once from
its longest cell, cuts the cells of a column marked ``shrink`` with "…" when the rows would not fit,
and yields one line of pre-measured segments per row: no wrapping, milliseconds per thousand rows.
"""

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal

from rich.cells import cell_len, set_cell_size
from rich.console import Console, ConsoleOptions
from rich.segment import Segment
from rich.style import Style

from loraledger.cli.terminal import printable

# A cell: its text, or its text and a rich style ("bold", "green", ...).
Cell = str | tuple[str, str]
GAP = "  "


@dataclass
class Column:
    header: str
    justify: Literal["left", "right"] = "left"
    shrink: bool = False  # may be cut to make the listing fit the console
    keep: Literal["start", "end"] = "start"  # what a cut keeps: a path's end says more than its start


@dataclass
class Listing:
    columns: list[Column]
    rows: list[Sequence[Cell]] = field(default_factory=list)
    caption: str | None = None

    def add_row(self, *cells: Cell) -> None:
        # Escaped here, before widths are measured: one row is one line, whatever a cell holds.
        self.rows.append(tuple(_printable(cell) for cell in cells))

    def widths(self, available: int) -> list[int]:
        widths = [_width(column.header) for column in self.columns]
        for row in self.rows:
            for index, cell in enumerate(row):
                width = _width(cell if isinstance(cell, str) else cell[0])
                if width > widths[index]:
                    widths[index] = width
        excess = sum(widths) + len(GAP) * (len(widths) - 1) - available
        # Cut the widest shrinkable column a cell at a time, so that several share the cut.
        floors = [max(_width(column.header), 8) for column in self.columns]
        shrinkable = [i for i, column in enumerate(self.columns) if column.shrink]
        while excess > 0:
            candidates = [i for i in shrinkable if widths[i] > floors[i]]
            if not candidates:
                break
            widest = max(candidates, key=lambda i: widths[i])
            widths[widest] -= 1
            excess -= 1
        return widths

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> Iterator[Segment]:
        widths = self.widths(options.max_width)
        right = [column.justify == "right" for column in self.columns]
        keep_end = [column.keep == "end" for column in self.columns]
        styles: dict[str, Style] = {}

        def line(cells: Sequence[Cell], base: Style | None = None) -> Iterator[Segment]:
            # Unstyled cells are joined into one segment: rich's cost is per segment, not per character.
            last = len(cells) - 1
            while last > 0 and not (cells[last] if isinstance(cells[last], str) else cells[last][0]):
                last -= 1  # no trailing blanks
            plain: list[str] = []
            for index in range(last + 1):
                cell = cells[index]
                text, style_name = (cell, None) if isinstance(cell, str) else cell
                text = _fit(
                    text, widths[index], right[index], keep_end[index], padded=index < last or right[index]
                )
                style = styles.setdefault(style_name, Style.parse(style_name)) if style_name else base
                if style is None:
                    plain.append(text)
                else:
                    if plain:
                        yield Segment("".join(plain))
                        plain = []
                    yield Segment(text, style)
                if index < last:
                    plain.append(GAP)
            plain.append("\n")
            yield Segment("".join(plain))

        yield from line([column.header for column in self.columns], Style(bold=True))
        total = sum(widths) + len(GAP) * (len(widths) - 1)
        yield Segment("─" * min(total, options.max_width) + "\n", Style(dim=True))
        for row in self.rows:
            yield from line(row)
        if self.caption:
            yield Segment(self.caption + "\n", Style(dim=True))


def _printable(cell: Cell) -> Cell:
    return printable(cell) if isinstance(cell, str) else (printable(cell[0]), cell[1])


def _width(text: str) -> int:
    return len(text) if text.isascii() else cell_len(text)


def _fit(text: str, width: int, right: bool, keep_end: bool, *, padded: bool) -> str:
    """``text`` cut to ``width`` cells with "…" where it was cut, padded on the side its column
    justifies."""
    size = _width(text)
    if size > width and keep_end:
        text, size = "…" + set_cell_size(text[::-1], width - 1)[::-1], width
    elif size > width:
        text, size = set_cell_size(text, width - 1) + "…", width
    if not padded:
        return text
    return " " * (width - size) + text if right else text + " " * (width - size)


@dataclass
class Branch:
    """One line of an ``Outline``: its label and the lines hanging under it."""

    label: Sequence[Cell]
    children: list["Branch"] = field(default_factory=list)


@dataclass
class Outline:
    """A tree drawn with guides (├── │ └──), one pre-built line per node: rich's ``Tree`` lays out
    every node as a renderable and takes seconds for a lineage of thousands of versions."""

    title: Sequence[Cell]
    branches: list[Branch] = field(default_factory=list)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> Iterator[Segment]:
        styles: dict[str, Style] = {}
        guide = Style(dim=True)

        def label(cells: Sequence[Cell]) -> Iterator[Segment]:
            for cell in cells:
                text, style_name = (cell, None) if isinstance(cell, str) else cell
                text = printable(text)  # one node, one line
                style = styles.setdefault(style_name, Style.parse(style_name)) if style_name else None
                yield Segment(text, style)
            yield Segment("\n")

        yield from label(self.title)
        # Depth-first without recursion: lineages can be deep where they branch often.
        stack: list[tuple[list[Branch], int, str]] = [(self.branches, 0, "")]
        while stack:
            siblings, index, prefix = stack.pop()
            if index >= len(siblings):
                continue
            last = index == len(siblings) - 1
            stack.append((siblings, index + 1, prefix))
            yield Segment(prefix + ("└── " if last else "├── "), guide)
            yield from label(siblings[index].label)
            if siblings[index].children:
                stack.append((siblings[index].children, 0, prefix + ("    " if last else "│   ")))

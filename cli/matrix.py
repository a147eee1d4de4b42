"""The score matrix (``adapters evals``) as a rich table, as JSON, and the words that explain it.

Colours read the same everywhere: red = worse by more than the gate's threshold, yellow = worse,
green = better, dim = within half a percent. NLL: lower is better. Every number in a matrix comes from
one scoring setting, which the title names; other settings are mentioned under it.
"""

import math
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from loraledger.registry.forgetting import Change, Row, ScoreMatrix, VersionMetrics
from loraledger.shapes import finite as finite
from loraledger.shapes import matrix_json as shape_matrix
from loraledger.views import Forgetting
from loraledger.wording import (
    LEGEND,
    NOISE,
    SETTING_LEGEND,
    forgetting_words,
    held_back,
    percent,
    setting_words,
    settings_note,
)


def colour(relative: float | None, threshold: float) -> str:
    if relative is None or not math.isfinite(relative):
        return "dim"
    if relative > threshold:
        return "bold red"
    if relative > NOISE:
        return "yellow"
    if relative < -NOISE:
        return "green"
    return "dim"


def matrix_table(matrix: ScoreMatrix, *, threshold: float, ever_current: set[int]) -> Table:
    table = Table(header_style="bold", show_lines=True, title="NLL per eval set (lower is better)")
    table.add_column("version")
    for eval_set in matrix.sets:
        role = eval_set.role if eval_set.learned_by is None else f"update of v{eval_set.learned_by}"
        table.add_column(Text.assemble(eval_set.label, "\n", (role, "dim")), justify="right")
    held = held_back(matrix, ever_current)
    for key, scores in matrix.bases.items():
        title = "base" if len(matrix.bases) == 1 else f"base {key.split(':')[-1][:8]}"
        table.add_row(
            Text(title, style="italic"),
            *[
                Text(f"{scores[s.digest]:.4f}") if s.digest in scores else Text("-", "dim")
                for s in matrix.sets
            ],
        )
    for row in matrix.rows:
        version = row.version
        name = Text(f"v{version.number}")
        if version.parent is not None:
            name.append(f" ← v{version.parent}", "dim")
        if version.current:
            name.append("\ncurrent", "bold green")
        elif version.number in held:
            name.append("\nheld back", "red")
        table.add_row(name, *[_cell(row, s.digest, threshold) for s in matrix.sets])
    return table


def _cell(row: Row, digest: str, threshold: float) -> Text:
    cell = row.cells.get(digest)
    if cell is None:
        return Text("-", "dim")
    text = Text(f"{cell.nll:.4f}")
    parts: list[tuple[str, Change | None]] = [("p", cell.vs_parent), ("b", cell.vs_base)]
    shown = [(tag, change) for tag, change in parts if change is not None]
    if shown:
        text.append("\n")
        for index, (tag, change) in enumerate(shown):
            assert change is not None
            if index:
                text.append(" ")
            text.append(f"{percent(change.relative)}{tag}", colour(change.relative, threshold))
    return text


def metrics_table(matrix: ScoreMatrix, *, threshold: float) -> Table:
    table = Table(header_style="bold", title="Forgetting (NLL: positive = forgot)")
    for column in ("version", "BWT", "max forgetting", "retention vs base"):
        table.add_column(column, justify="left" if column == "version" else "right")
    for row in matrix.rows:
        metrics = row.metrics
        table.add_row(
            f"v{row.version.number}" + (" (current)" if row.version.current else ""),
            _bwt(metrics, threshold),
            _max_forgetting(matrix, metrics, threshold),
            _retention(metrics, threshold),
        )
    return table


def _bwt(metrics: VersionMetrics, threshold: float) -> Text:
    if metrics.bwt is None:
        return Text("-", "dim")
    return Text(
        f"{metrics.bwt:+.4f} ({percent(metrics.bwt_relative)}, {len(metrics.updates)} update(s))",
        colour(metrics.bwt_relative, threshold),
    )


def _max_forgetting(matrix: ScoreMatrix, metrics: VersionMetrics, threshold: float) -> Text:
    worst = metrics.max_forgetting
    if worst is None:
        return Text("-", "dim")
    words = forgetting_words(worst, matrix.eval_set(worst.digest).label)
    return Text(words, colour(worst.forgetting_relative, threshold))


def _retention(metrics: VersionMetrics, threshold: float) -> Text:
    if not metrics.retention:
        return Text("-", "dim")
    return Text(percent(metrics.retention_relative), colour(metrics.retention_relative, threshold))


def matrix_view(view: Forgetting) -> Group:
    matrix, name, threshold, ever_current = view.matrix, view.name, view.threshold, view.ever_current
    if not matrix.rows:
        return Group(Text(f"{name} has no versions yet"))
    if not matrix.sets:
        return Group(
            Text(
                f"{name} has no eval sets: train with --eval FILE, or `adapters suite add {name} FILE`, "
                f"then `adapters eval {name}`"
            )
        )
    other = settings_note(matrix, name)
    return Group(
        Text(f"{name}: {setting_words(matrix)}", style="bold"),  # what every number below shares
        matrix_table(matrix, threshold=threshold, ever_current=ever_current),
        metrics_table(matrix, threshold=threshold),
        *([Text(other, style="yellow")] if other else []),
        Text(f"gate: current moves only if no retention set or earlier update gets > {threshold:.1%} worse"),
        Text(f"{LEGEND} {SETTING_LEGEND}", style="dim"),
    )


def matrix_json(view: Forgetting) -> dict[str, Any]:
    """``adapters evals --json``: the library's shape (shared with the dashboard) of one view."""
    return shape_matrix(view.matrix, name=view.name, threshold=view.threshold, ever_current=view.ever_current)

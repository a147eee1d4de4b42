"""The dashboard's pictures, drawn as inline SVG on the server: no script, no plotting library (the
dashboard must run without the train extra), and every label escaped here, since the templates insert
this markup as it is.

- ``lineage_svg``: one row per version, oldest at the top (the score matrix's order), each line of
  descent in a lane like ``git log --graph``: a version continuing the newest version of a lane stays in
  that lane, a second child (a branch after a rollback) takes a free lane. Lanes are reused, so a
  lineage of thousands of versions is as wide as its branching, not as long as its history.
- ``curves_svg``: one small chart per eval set, NLL (y) per version (x), lines along the lineage, the
  base as a dashed line, current and held-back versions marked; hover a point for its value.
"""

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

from loraledger.registry.forgetting import Row, ScoreMatrix
from loraledger.schemas.records import VersionSummary

ROW, LANE, TOP, LEFT = 26, 16, 16, 12
KIND_STROKE = {"train": "#3b5b92", "stack": "#7a3b92", "merge": "#7a3b92", "import": "#b0651b"}


def number_of(ref: str | None, name: str) -> int | None:
    """``legal@3`` -> 3 when the ref is one of ``name``'s versions (inputs may name other adapters)."""
    if not ref:
        return None
    owner, _, selector = ref.partition("@")
    return int(selector) if owner == name and selector.isdigit() else None


@dataclass
class Placed:
    version: VersionSummary
    row: int
    lane: int
    parent: int | None  # the parent's number, when the parent is drawn too


def place(versions: Sequence[VersionSummary]) -> list[Placed]:
    """Rows and lanes for ``versions`` (one adapter's, oldest first)."""
    numbers = {v.number for v in versions}
    parents = {v.number: number_of(v.parent, v.name) for v in versions}
    remaining: dict[int, int] = {}  # children of a version not placed yet: its lane stays reserved
    for parent in parents.values():
        if parent in numbers:
            remaining[parent] = remaining.get(parent, 0) + 1
    tips: list[tuple[int, int]] = []  # per lane: (number, row) of the lowest version in it
    placed: dict[int, Placed] = {}
    for row, version in enumerate(versions):
        parent = parents[version.number] if parents[version.number] in placed else None
        lane = None
        if parent is not None:
            parent_lane = placed[parent].lane
            if tips[parent_lane][0] == parent:
                lane = parent_lane
        if lane is None:
            # A free lane: its lowest version has no child still to come, and (for an edge from the
            # parent down to here) nothing in it lies between the parent's row and this one.
            since = placed[parent].row if parent is not None else row
            lane = next(
                (
                    index
                    for index, (tip, tip_row) in enumerate(tips)
                    if remaining.get(tip, 0) == 0 and tip_row < since
                ),
                len(tips),
            )
            if lane == len(tips):
                tips.append((version.number, row))
        tips[lane] = (version.number, row)
        if parent is not None:
            remaining[parent] -= 1
        placed[version.number] = Placed(version, row, lane, parent)
    return list(placed.values())


def lineage_svg(
    versions: Sequence[VersionSummary],
    *,
    held: set[int],
    link: Callable[[int], str],
) -> str:
    nodes = place(versions)
    if not nodes:
        return ""
    lanes = max(node.lane for node in nodes) + 1
    text_x = LEFT + lanes * LANE + 8
    width = text_x + 640
    height = TOP * 2 + ROW * (len(nodes) - 1)
    by_number = {node.version.number: node for node in nodes}

    def centre(node: Placed) -> tuple[int, int]:
        return LEFT + node.lane * LANE, TOP + node.row * ROW

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="lineage" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="lineage graph">'
    ]
    for node in nodes:
        x, y = centre(node)
        if node.parent is not None:
            px, py = centre(by_number[node.parent])
            bend = py + ROW // 2 if px != x else y
            parts.append(
                f'<path d="M{px},{py} L{x},{bend} L{x},{y}" fill="none" stroke="#8a94a6" stroke-width="2"/>'
            )
        elif node.version.parent:  # its parent is older than the rows shown, or another adapter's
            parts.append(f'<path d="M{x},{y - ROW // 2} L{x},{y}" stroke="#8a94a6" stroke-dasharray="3 2"/>')
    for node in nodes:
        version = node.version
        x, y = centre(node)
        state = "current" if version.is_current else "held" if version.number in held else "kept"
        fill = {"current": "#2e9d4d", "held": "#c0392b", "kept": "#ffffff"}[state]
        stroke = KIND_STROKE.get(version.kind, "#3b5b92")
        label = [
            f'<tspan font-weight="bold">v{version.number}</tspan>',
            f'<tspan fill="#666"> {version.kind}',
        ]
        if version.final_loss is not None:
            label.append(f", loss {version.final_loss:.3f}")
        label.append("</tspan>")
        if version.parent and node.parent is None:
            label.append(f'<tspan fill="#666"> (from {escape(version.parent)})</tspan>')
        if version.inputs:
            inputs = " + ".join(f"{i.ref}×{i.weight:g}" for i in version.inputs)
            label.append(f'<tspan fill="#7a3b92"> ← {escape(inputs)}</tspan>')
        for alias in version.aliases:
            if alias != "current":
                label.append(f'<tspan class="alias" fill="#1d6b35"> [{escape(alias)}]</tspan>')
        if version.is_current:
            label.append('<tspan class="alias" fill="#1d6b35" font-weight="bold"> ← current</tspan>')
        elif state == "held":
            label.append('<tspan fill="#c0392b"> held back</tspan>')
        parts.append(
            f'<a href="{escape(link(version.number))}" class="node" data-version="{version.number}">'
            f'<circle cx="{x}" cy="{y}" r="6" fill="{fill}" stroke="{stroke}" stroke-width="2.5"/>'
            f'<text x="{text_x}" y="{y + 4}" font-size="12">{"".join(label)}</text></a>'
        )
    parts.append("</svg>")
    return "".join(parts)


def curves_svg(matrix: ScoreMatrix, *, held: set[int], numbers: set[int], limit: int = 6) -> str:
    """Forgetting curves of the rows numbered ``numbers`` (the window the page shows)."""
    rows = {row.version.number: row for row in matrix.rows if row.version.number in numbers}
    charts = []
    for eval_set in matrix.sets[:limit]:
        points = {
            n: row.cells[eval_set.digest].nll for n, row in rows.items() if eval_set.digest in row.cells
        }
        points = {n: v for n, v in points.items() if math.isfinite(v)}
        if points:
            base = next((s[eval_set.digest] for s in matrix.bases.values() if eval_set.digest in s), None)
            charts.append(_chart(eval_set.label, eval_set.role, points, rows, held, base))
    return "".join(charts)


def _chart(
    label: str,
    role: str,
    points: dict[int, float],
    rows: dict[int, Row],
    held: set[int],
    base: float | None,
) -> str:
    width, height, pad_left, pad = 320, 190, 52, 26
    values = list(points.values()) + ([base] if base is not None and math.isfinite(base) else [])
    low, high = min(values), max(values)
    if high - low < 1e-9:
        low, high = low - 0.5, high + 0.5
    first, last = min(points), max(points)
    span = max(last - first, 1)

    def sx(number: int) -> float:
        return pad_left + (number - first) / span * (width - pad_left - 10)

    def sy(value: float) -> float:
        return pad + (high - value) / (high - low) * (height - 2 * pad)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="curve" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="NLL on {escape(label)}">',
        f'<text x="{pad_left}" y="14" font-size="12" font-weight="bold">{escape(label)} '
        f'<tspan fill="#666" font-weight="normal">({escape(role)})</tspan></text>',
        f'<line x1="{pad_left}" y1="{pad}" x2="{pad_left}" y2="{height - pad}" stroke="#bbb"/>',
        f'<text x="4" y="{sy(high) + 4:.1f}" font-size="10">{high:.3f}</text>',
        f'<text x="4" y="{sy(low) + 4:.1f}" font-size="10">{low:.3f}</text>',
        f'<text x="{pad_left}" y="{height - 6}" font-size="10">v{first}</text>',
        f'<text x="{width - 40}" y="{height - 6}" font-size="10">v{last}</text>',
    ]
    if base is not None and math.isfinite(base):
        parts.append(
            f'<line x1="{pad_left}" y1="{sy(base):.1f}" x2="{width - 10}" y2="{sy(base):.1f}" stroke="#999" '
            f'stroke-dasharray="4 3"><title>base {base:.4f}</title></line>'
        )
    for number, value in points.items():
        parent = rows[number].version.parent
        if parent in points:
            parts.append(
                f'<line x1="{sx(parent):.1f}" y1="{sy(points[parent]):.1f}" x2="{sx(number):.1f}" '
                f'y2="{sy(value):.1f}" stroke="#4c72b0" stroke-width="1.5"/>'
            )
    for number, value in points.items():
        x, y = sx(number), sy(value)
        current = rows[number].version.current
        tip = f"<title>v{number}: {value:.4f}{' (current)' if current else ''}</title>"
        if number in held:
            parts.append(
                f'<path class="held" d="M{x - 4:.1f},{y - 4:.1f} L{x + 4:.1f},{y + 4:.1f} M{x - 4:.1f},'
                f'{y + 4:.1f} L{x + 4:.1f},{y - 4:.1f}" stroke="#c0392b" stroke-width="2">{tip}</path>'
            )
        else:
            size, colour = (6, "#2e9d4d") if current else (3, "#4c72b0")
            parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{size}" fill="{colour}">{tip}</circle>')
    parts.append("</svg>")
    return "".join(parts)

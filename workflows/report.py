"""``adapters report``: each eval set's NLL across the lineage as plots (PNG), or a self-contained HTML
page with the lineage graph, the score matrix, the forgetting metrics and the plots.

The page needs nothing but itself: styles are inline, the lineage graph is inline SVG and the plots
are PNGs embedded as base64 data URIs, so it can be mailed, attached to a ticket or archived.
"""

import base64
import html
import io
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from loraledger.registry.forgetting import Change, ScoreMatrix
from loraledger.schemas.errors import InvalidInput
from loraledger.settings import Settings
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

if TYPE_CHECKING:
    from matplotlib.figure import Figure

FORMATS = (".html", ".htm", ".png")


def write_report(settings: Settings, name: str, out: Path) -> Path:
    suffix = out.suffix.lower()
    if suffix not in FORMATS:
        raise InvalidInput(
            f"--out {out}: the report is written as .html or .png (got {suffix or 'no suffix'!r})"
        )
    registry = settings.open_registry()
    matrix = registry.score_matrix(name)
    threshold = registry.max_regression(name)
    ever_current = {e.to_version for e in registry.history(name) if e.alias == "current" and e.to_version}
    if not any(row.cells for row in matrix.rows):
        raise InvalidInput(
            f"{name} has no scores to report yet: train with --eval FILE or run `adapters eval`"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".png":
        out.write_bytes(plots_png(matrix, name, ever_current))
    else:
        from loraledger.retention_report import searches, searches_html

        page = html_page(matrix, name, threshold, ever_current)
        extra = searches_html(searches(registry.versions(name)))
        out.write_text(page.replace("</body></html>", extra + "\n</body></html>"), encoding="utf-8")
    return out


# ---- plots ----------------------------------------------------------------------------------------


def plots_figure(matrix: ScoreMatrix, name: str, ever_current: set[int]) -> "Figure":
    """One panel per eval set: NLL of every version (x: version number), lines along the lineage,
    the base model as a dashed line; the current version starred, held-back versions crossed."""
    import matplotlib

    matplotlib.use("Agg")  # files only: never a window, works without a display
    from matplotlib.figure import Figure

    sets = [s for s in matrix.sets if any(s.digest in row.cells for row in matrix.rows)]
    columns = min(3, len(sets))
    lines = math.ceil(len(sets) / columns)
    figure = Figure(figsize=(4.6 * columns, 3.4 * lines + 0.6), dpi=100, layout="constrained")
    figure.suptitle(f"{name}: NLL per eval set across the lineage (lower is better), {setting_words(matrix)}")
    axes = figure.subplots(lines, columns, squeeze=False)
    held = held_back(matrix, ever_current)
    by_number = {row.version.number: row for row in matrix.rows}
    for index, eval_set in enumerate(sets):
        ax = axes[index // columns][index % columns]
        points = {
            n: row.cells[eval_set.digest].nll for n, row in by_number.items() if eval_set.digest in row.cells
        }
        for number, value in points.items():
            parent = by_number[number].version.parent
            if parent in points:
                ax.plot([parent, number], [points[parent], value], color="#4c72b0", linewidth=1.5, zorder=1)
        kept = [n for n in points if n not in held]
        ax.scatter(kept, [points[n] for n in kept], color="#4c72b0", zorder=2, label="version")
        dropped = [n for n in points if n in held]
        if dropped:
            ax.scatter(
                dropped,
                [points[n] for n in dropped],
                color="#c44e52",
                marker="X",
                s=70,
                zorder=3,
                label="held back",
            )
        current = [n for n in points if by_number[n].version.current]
        if current:
            ax.scatter(
                current,
                [points[n] for n in current],
                color="#55a868",
                marker="*",
                s=220,
                zorder=4,
                label="current",
            )
        for scores in matrix.bases.values():
            if eval_set.digest in scores:
                ax.axhline(scores[eval_set.digest], color="grey", linestyle="--", linewidth=1, label="base")
                break
        role = f"update of v{eval_set.learned_by}" if eval_set.learned_by else eval_set.role
        ax.set_title(f"{eval_set.label} ({role})", fontsize=10)
        ax.set_xlabel("version")
        ax.set_ylabel("NLL")
        ax.set_xticks(sorted(by_number))
        ax.grid(alpha=0.3)
        if index == 0:
            ax.legend(fontsize=8)
    for index in range(len(sets), lines * columns):
        axes[index // columns][index % columns].set_visible(False)
    return figure


def plots_png(matrix: ScoreMatrix, name: str, ever_current: set[int]) -> bytes:
    buffer = io.BytesIO()
    plots_figure(matrix, name, ever_current).savefig(buffer, format="png")
    return buffer.getvalue()


# ---- lineage graph (inline SVG) -------------------------------------------------------------------


def lineage_svg(matrix: ScoreMatrix, ever_current: set[int]) -> str:
    """Versions as boxes, placed by depth (left to right) and branch (top to bottom)."""
    numbers = {row.version.number: row.version for row in matrix.rows}
    children: dict[int | None, list[int]] = {}
    for number, version in sorted(numbers.items()):
        parent = version.parent if version.parent in numbers else None
        children.setdefault(parent, []).append(number)
    place: dict[int, tuple[int, int]] = {}

    def visit(number: int, depth: int) -> None:
        place[number] = (depth, len(place))
        for child in children.get(number, []):
            visit(child, depth + 1)

    for root in children.get(None, []):
        visit(root, 0)
    held = held_back(matrix, ever_current)
    width, height, gap_x, gap_y = 110, 40, 50, 16
    total_w = (max(d for d, _ in place.values()) + 1) * (width + gap_x)
    total_h = len(place) * (height + gap_y) + gap_y
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{total_w}" height="{total_h}" '
        f'viewBox="0 0 {total_w} {total_h}" role="img" aria-label="lineage">'
    ]

    def corner(number: int) -> tuple[int, int]:
        depth, slot = place[number]
        return 10 + depth * (width + gap_x), gap_y + slot * (height + gap_y)

    for number, version in numbers.items():
        if version.parent in place:
            px, py = corner(version.parent)
            x, y = corner(number)
            parts.append(
                f'<line x1="{px + width}" y1="{py + height // 2}" x2="{x}" y2="{y + height // 2}" '
                'stroke="#888" stroke-width="2"/>'
            )
    for number, version in numbers.items():
        x, y = corner(number)
        fill, note = "#eef2f8", ""
        if version.current:
            fill, note = "#d7f0dd", "current"
        elif number in held:
            fill, note = "#f7dcdc", "held back"
        parts.append(
            f'<g class="node"><rect x="{x}" y="{y}" width="{width}" height="{height}" rx="6" '
            f'fill="{fill}" stroke="#555"/><text x="{x + 10}" y="{y + 17}" font-size="13" '
            f'font-family="sans-serif" font-weight="bold">v{number}</text>'
            f'<text x="{x + 10}" y="{y + 32}" font-size="11" font-family="sans-serif">{note}</text></g>'
        )
    parts.append("</svg>")
    return "".join(parts)


# ---- the page -------------------------------------------------------------------------------------

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: right; vertical-align: top; }
th:first-child, td:first-child { text-align: left; }
.worse-gate { color: #b00020; font-weight: bold; } .worse { color: #a66b00; }
.better { color: #1b7f3b; } .flat { color: #888; } .note { color: #666; max-width: 60em; }
small { display: block; }
"""


def _css(relative: float | None, threshold: float) -> str:
    if relative is None or not math.isfinite(relative):
        return "flat"
    if relative > threshold:
        return "worse-gate"
    if relative > NOISE:
        return "worse"
    return "better" if relative < -NOISE else "flat"


def _change_html(change: Change | None, tag: str, threshold: float) -> str:
    if change is None:
        return ""
    return f'<span class="{_css(change.relative, threshold)}">{percent(change.relative)}{tag}</span>'


def html_page(matrix: ScoreMatrix, name: str, threshold: float, ever_current: set[int]) -> str:
    esc = html.escape
    held = held_back(matrix, ever_current)
    head = "".join(
        f"<th>{esc(s.label)}<small>{esc(s.role if s.learned_by is None else f'update of v{s.learned_by}')}"
        "</small></th>"
        for s in matrix.sets
    )
    rows = []
    for scores in matrix.bases.values():
        base_cells = "".join(
            f"<td>{scores[s.digest]:.4f}</td>" if s.digest in scores else "<td>-</td>" for s in matrix.sets
        )
        rows.append(f'<tr class="base"><td><i>base</i></td>{base_cells}</tr>')
    for row in matrix.rows:
        version = row.version
        state = " (current)" if version.current else (" (held back)" if version.number in held else "")
        cells = []
        for eval_set in matrix.sets:
            cell = row.cells.get(eval_set.digest)
            if cell is None:
                cells.append("<td>-</td>")
                continue
            changes = " ".join(
                part
                for part in (
                    _change_html(cell.vs_parent, "p", threshold),
                    _change_html(cell.vs_base, "b", threshold),
                )
                if part
            )
            cells.append(f"<td>{cell.nll:.4f}<small>{changes}</small></td>")
        parent = f" ← v{version.parent}" if version.parent is not None else ""
        rows.append(
            f'<tr data-version="{version.number}"><td>v{version.number}{parent}{state}</td>'
            + "".join(cells)
            + "</tr>"
        )
    metric_rows = []
    for row in matrix.rows:
        metrics = row.metrics
        worst = metrics.max_forgetting
        bwt = "-" if metrics.bwt is None else f"{metrics.bwt:+.4f} ({percent(metrics.bwt_relative)})"
        forgetting = esc(forgetting_words(worst, matrix.eval_set(worst.digest).label if worst else ""))
        retention = percent(metrics.retention_relative) if metrics.retention else "-"
        metric_rows.append(
            f"<tr><td>v{row.version.number}</td>"
            f'<td class="{_css(metrics.bwt_relative, threshold)}">{bwt}</td>'
            f'<td class="{_css(worst.forgetting_relative if worst else None, threshold)}">{forgetting}</td>'
            f'<td class="{_css(metrics.retention_relative, threshold)}">{retention}</td></tr>'
        )
    other = settings_note(matrix, name)
    others = f'<p class="note" id="other-settings">{esc(other)}</p>' if other else ""
    png = base64.b64encode(plots_png(matrix, name, ever_current)).decode("ascii")
    created = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{esc(name)}: forgetting report</title>
<style>{STYLE}</style></head>
<body>
<h1>{esc(name)}: forgetting report</h1>
<p class="note">Generated {created} by <code>adapters report</code>. Gate threshold: current moves only if no
retention set or earlier update's eval split gets more than {threshold:.1%} worse (NLL) than the parent.</p>
<h2>Lineage</h2>
{lineage_svg(matrix, ever_current)}
<h2>Score matrix</h2>
<table id="matrix"><caption>NLL per eval set, {esc(setting_words(matrix))}</caption>
<thead><tr><th>version</th>{head}</tr></thead><tbody>
{"".join(rows)}
</tbody></table>
{others}
<h2>Forgetting metrics</h2>
<table id="metrics"><thead><tr><th>version</th><th>BWT</th><th>max forgetting</th><th>retention vs base</th>
</tr></thead><tbody>
{"".join(metric_rows)}
</tbody></table>
<p class="note">{esc(LEGEND)} {esc(SETTING_LEGEND)}</p>
<h2>Scores across the lineage</h2>
<img id="plots" alt="NLL per eval set across the lineage" src="data:image/png;base64,{png}">
</body></html>
"""

"""The retention searches in ``adapters report``: each search as a forgetting-versus-gain plot, with the
budget line and the chosen point (one small PNG each, embedded in the HTML page)."""

import base64
import html
import io
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from loraledger.schemas.records import VersionRecord


def searches(versions: "list[VersionRecord]") -> dict[str, dict[str, Any]]:
    """ref -> trace, one per search: the chosen version's (which names its raw update), or the raw
    update's own when nothing met the budget. Searches that found the raw update within budget are
    left out: there is nothing to plot."""
    found: dict[str, dict[str, Any]] = {}
    for version in versions:
        trace = version.training.get("retention")
        if not isinstance(trace, dict) or len(trace.get("candidates", [])) < 2:
            continue
        if trace.get("raw") or trace.get("remedy") == "unmet":
            found[version.ref] = trace
    return found


def trace_png(ref: str, trace: dict[str, Any]) -> bytes:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5.5, 3.6), dpi=100, layout="constrained")
    ax = figure.subplots()
    budget = float(trace["budget"])
    for remedy, marker in (("raw", "s"), ("strength", "o"), ("replay", "^")):
        points = [c for c in trace["candidates"] if c["remedy"] == remedy]
        if not points:
            continue
        xs = [100 * (c["gain_share"] or 0.0) for c in points]
        ys = [100 * c["worst_forgetting"] for c in points]
        ax.scatter(xs, ys, marker=marker, label=remedy, zorder=2)
        for c, x, y in zip(points, xs, ys, strict=True):
            tag = {"strength": f"a={c['alpha']:.3g}", "replay": f"r={c['replay']:g}"}.get(remedy, "raw")
            ax.annotate(tag, (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    chosen = [c for c in trace["candidates"] if c.get("chosen")]
    for c in chosen:
        ax.scatter(
            [100 * (c["gain_share"] or 0.0)],
            [100 * c["worst_forgetting"]],
            s=160,
            facecolors="none",
            edgecolors="green",
            linewidths=2,
            label="chosen",
            zorder=3,
        )
    ax.axhline(100 * budget, color="red", linestyle="--", label=f"budget {budget:.1%}")
    ax.axvline(100 * float(trace["min_gain_share"]), color="grey", linestyle=":", label="usefulness floor")
    ax.set_xlabel("share of the raw update's domain gain kept (%)")
    ax.set_ylabel("worst forgetting (% NLL)")
    ax.set_title(f"{ref}: retention search ({trace['remedy']})", fontsize=10)
    ax.legend(fontsize=7)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def searches_html(traces: dict[str, dict[str, Any]]) -> str:
    if not traces:
        return ""
    parts = ["<h2>Retention searches</h2>"]
    for ref, trace in traces.items():
        png = base64.b64encode(trace_png(ref, trace)).decode("ascii")
        costs = trace.get("search_seconds") or {}
        parts.append(
            f'<p class="note">{html.escape(ref)}: budget {trace["budget"]:.1%} against '
            f"{html.escape(str(trace['reference']))}; {len(trace['candidates'])} candidates; search "
            f"{sum(costs.values()):.0f}s next to {trace.get('train_seconds', 0):.0f}s of training.</p>"
            f'<img class="retention" alt="forgetting against gain for {html.escape(ref)}" '
            f'src="data:image/png;base64,{png}">'
        )
    return "\n".join(parts)

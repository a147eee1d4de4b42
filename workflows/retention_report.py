"""The retention searches in ``adapters report``: each search as forgetting-versus-strength and
forgetting-versus-gain plots, with the budget line and the chosen point (one small PNG each, embedded
in the HTML page)."""

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
    """Two panels: worst forgetting against strength (every strength candidate, probes included, and
    the raw update at 1), and against the share of the domain gain kept (the candidates scored on
    every set: the raw update, the chosen one, replay retrainings); the budget line on both, the
    chosen point circled."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8.5, 3.6), dpi=100, layout="constrained")
    by_strength, by_gain = figure.subplots(1, 2, sharey=True)
    budget = float(trace["budget"])
    candidates = trace["candidates"]
    chosen = [c for c in candidates if c.get("chosen")]

    def plot(ax: Any, points: list[dict[str, Any]], x: Any, marker: str, label: str) -> None:
        if not points:
            return
        ys = [100 * c["worst_forgetting"] for c in points]
        ax.scatter([x(c) for c in points], ys, marker=marker, label=label, zorder=2)

    def strength(c: dict[str, Any]) -> float:
        return 1.0 if c["remedy"] == "raw" else float(c["alpha"])

    def kept(c: dict[str, Any]) -> float:
        return 100 * (c["gain_share"] or 0.0)

    plot(by_strength, [c for c in candidates if c["remedy"] == "raw"], strength, "s", "raw")
    plot(by_strength, [c for c in candidates if c["remedy"] == "strength"], strength, "o", "strength")
    for c in candidates:
        if c["remedy"] == "strength":
            tag = "" if c.get("complete", True) else " (at-risk sets)"
            by_strength.annotate(
                f"{c['alpha']:.3g}{tag}",
                (strength(c), 100 * c["worst_forgetting"]),
                fontsize=6,
                xytext=(3, 3),
                textcoords="offset points",
            )
    complete = [c for c in candidates if c.get("complete", True) and c["gain_share"] is not None]
    for remedy, marker in (("raw", "s"), ("strength", "o"), ("replay", "^")):
        points = [c for c in complete if c["remedy"] == remedy]
        plot(by_gain, points, kept, marker, remedy)
        for c in points:
            tag = {"strength": f"a={c['alpha']:.3g}", "replay": f"r={c['replay']:g}"}.get(remedy, "raw")
            by_gain.annotate(
                tag,
                (kept(c), 100 * c["worst_forgetting"]),
                fontsize=7,
                xytext=(3, 3),
                textcoords="offset points",
            )
    for ax, x in ((by_strength, strength), (by_gain, kept)):
        for c in chosen:
            ax.scatter(
                [x(c)],
                [100 * c["worst_forgetting"]],
                s=160,
                facecolors="none",
                edgecolors="green",
                linewidths=2,
                label="chosen",
                zorder=3,
            )
        ax.axhline(100 * budget, color="red", linestyle="--", label=f"budget {budget:.1%}")
    by_gain.axvline(
        100 * float(trace["min_gain_share"]), color="grey", linestyle=":", label="usefulness floor"
    )
    by_strength.set_xlabel("strength alpha")
    by_strength.set_ylabel("worst forgetting (% NLL)")
    by_gain.set_xlabel("share of the raw update's domain gain kept (%)")
    figure.suptitle(f"{ref}: retention search ({trace['remedy']})", fontsize=10)
    by_strength.legend(fontsize=7)
    by_gain.legend(fontsize=7)
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
            f'<img class="retention" alt="forgetting against strength and gain for {html.escape(ref)}" '
            f'src="data:image/png;base64,{png}">'
        )
    return "\n".join(parts)

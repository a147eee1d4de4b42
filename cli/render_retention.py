"""The retention search as the CLI shows it: one line per candidate (``adapters show``, ``train``)."""

from typing import Any


def trace_lines(trace: dict[str, Any]) -> list[tuple[str, str]]:
    """(key, value) rows for a version's ``training["retention"]``: the outcome, then each candidate
    in the order it was tried, with its worst forgetting, kept gain and cost."""
    budget = trace.get("budget") or 0.0
    remedy = trace.get("remedy")
    if remedy == "none":
        outcome = "the raw update was within it"
    elif remedy == "strength":
        outcome = f"raw update at strength alpha={trace.get('alpha')}"
    elif remedy == "replay":
        outcome = f"retrained with {trace.get('replay') or 0:.0%} replay"
    else:
        outcome = "[bold red]nothing met it[/]: nothing went live"
    costs = trace.get("search_seconds") or {}
    train = trace.get("train_seconds") or 0.0
    spent = sum(costs.values())
    share = f" ({spent / train:.0%} of training's {train:.0f}s)" if train else ""
    rows = [
        (
            "retention",
            f"budget {budget:.1%} against {trace.get('reference')}, floor "
            f"{trace.get('min_gain_share', 0):.0%} of the gain: {outcome}",
        ),
        (
            "search cost",
            f"strength {costs.get('strength', 0):.1f}s, replay {costs.get('replay', 0):.1f}s{share}",
        ),
    ]
    if trace.get("raw"):
        rows.append(("raw update", f"{trace['raw']} (held back)"))
    for candidate in trace.get("candidates", []):
        gain = candidate.get("gain_share")
        if candidate.get("chosen"):
            mark = "[green]chosen[/]"
        elif not candidate.get("within_budget"):
            mark = "over"
        else:  # a probe scored on the sets at risk only (workflows/retention.py)
            mark = "within" if candidate.get("complete", True) else "within on the sets at risk"
        what = (
            candidate["remedy"]
            + (f" alpha={candidate['alpha']:g}" if candidate["remedy"] == "strength" else "")
            + (f" replay={candidate['replay']:g}" if candidate["remedy"] == "replay" else "")
        )
        rows.append(
            (
                "candidate",
                f"{what}: worst forgetting {candidate['worst_forgetting']:+.2%}, gain kept "
                f"{'-' if gain is None else f'{gain:.0%}'}, {candidate['seconds']:.1f}s, {mark}",
            )
        )
    return rows

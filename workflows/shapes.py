"""Records as JSON-ready dicts: the shapes of the CLI's ``--json`` and of the dashboard's ``.json``
pages, built in one place so that both clients print the same thing."""

import math
from typing import Any

from loraledger.registry.forgetting import Change, ScoreMatrix, UpdateForgetting, VersionMetrics
from loraledger.schemas.records import AliasEvent, DatasetUse, VersionRecord, VersionSummary
from loraledger.wording import held_back


def finite(value: Any) -> Any:
    """NaN and infinities are not JSON: they become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def version_json(version: VersionRecord, *, full: bool) -> dict[str, Any]:
    """``adapters show --json`` (``full``) and one entry of ``adapters list --json``."""
    data = version.model_dump(mode="json")
    data["ref"] = version.ref
    data["current"] = version.is_current
    data["train_digest"] = version.train_digest
    if not full:
        for key in ("evals", "publications"):
            data.pop(key, None)
    return data


def lineage_json(summaries: list[VersionSummary]) -> list[dict[str, Any]]:
    """``adapters lineage --json``: one flat entry per version with its parent and inputs (lineages run
    to thousands of versions, deeper than nested JSON can go)."""
    return [
        {
            "ref": v.ref,
            "kind": v.kind,
            "parent": v.parent,
            "inputs": [i.model_dump() for i in v.inputs],
            "aliases": v.aliases,
            "current": v.is_current,
            "train_digest": v.train_digest,
            "final_loss": v.final_loss,
        }
        for v in summaries
    ]


def history_json(events: list[AliasEvent]) -> list[dict[str, Any]]:
    """``adapters history --json``."""
    return [e.model_dump(mode="json") for e in events]


def datasets_json(uses: list[DatasetUse]) -> list[dict[str, Any]]:
    """``adapters datasets --json``."""
    return [u.model_dump(mode="json") for u in uses]


def diff_json(left: str, right: str, differences: dict[str, tuple[Any, Any]]) -> dict[str, dict[str, Any]]:
    """``adapters diff --json``: field -> {left ref: value, right ref: value}."""
    return {key: {left: a_value, right: b_value} for key, (a_value, b_value) in differences.items()}


def ever_current(events: list[AliasEvent]) -> set[int]:
    """Versions the ``current`` alias ever pointed at: the others were held back by the gate."""
    return {e.to_version for e in events if e.alias == "current" and e.to_version}


def matrix_json(
    matrix: ScoreMatrix, *, name: str, threshold: float, ever_current: set[int]
) -> dict[str, Any]:
    """``adapters evals --json``: the score matrix of one scoring setting with the forgetting metrics."""
    held = held_back(matrix, ever_current)
    labels = {s.digest: s.label for s in matrix.sets}
    data: dict[str, Any] = finite(
        {
            "name": name,
            "metric": "nll",
            "lower_is_better": True,
            "setting": matrix.setting,
            "other_settings": matrix.other_settings,
            "threshold": threshold,
            "sets": [
                {"digest": s.digest, "label": s.label, "role": s.role, "learned_by": s.learned_by}
                for s in matrix.sets
            ],
            "bases": matrix.bases,
            "versions": [
                {
                    "ref": f"{name}@{row.version.number}",
                    "number": row.version.number,
                    "parent": row.version.parent,
                    "current": row.version.current,
                    "held_back": row.version.number in held,
                    "base": row.version.base,
                    "scores": {
                        digest: {
                            "nll": cell.nll,
                            "vs_parent": change_json(cell.vs_parent),
                            "vs_base": change_json(cell.vs_base),
                        }
                        for digest, cell in row.cells.items()
                    },
                    "metrics": _metrics(row.metrics, labels),
                }
                for row in matrix.rows
            ],
        }
    )
    return data


def change_json(change: Change | None) -> dict[str, float] | None:
    if change is None:
        return None
    return {
        "before": change.before,
        "after": change.after,
        "absolute": change.absolute,
        "relative": change.relative,
    }


def _update(update: UpdateForgetting, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "digest": update.digest,
        "label": labels.get(update.digest),
        "learned_by": update.learned_by,
        "after_learning": update.after_learning,
        "best": update.best,
        "now": update.now,
        "transfer": update.transfer,
        "forgetting": update.forgetting,
        "forgetting_relative": update.forgetting_relative,
    }


def _metrics(metrics: VersionMetrics, labels: dict[str, str]) -> dict[str, Any]:
    worst = metrics.max_forgetting
    return {
        "bwt": metrics.bwt,
        "bwt_relative": metrics.bwt_relative,
        "max_forgetting": _update(worst, labels) if worst else None,
        "updates": [_update(u, labels) for u in metrics.updates],
        "retention": {digest: change_json(change) for digest, change in metrics.retention.items()},
        "retention_relative": metrics.retention_relative,
    }

"""What each page shows, read through the ``Ledger`` only: a ``Page`` holds the JSON answer (the CLI's
``--json`` shapes, from ``loraledger.shapes``) and what the HTML template needs on top of it.

Registries run to thousands of versions: the HTML of an adapter shows its newest ``WINDOW`` versions
(graph, matrix, curves) and its newest ``WINDOW`` alias moves, and says so; the JSON holds everything.
"""

import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from markupsafe import Markup

from loraledger.dashboard.svg import curves_svg, lineage_svg, number_of
from loraledger.errors import NotFound
from loraledger.ledger import Ledger
from loraledger.registry.forgetting import ScoreMatrix
from loraledger.schemas.records import VersionRecord, VersionSummary
from loraledger.shapes import (
    datasets_json,
    diff_json,
    ever_current,
    history_json,
    lineage_json,
    matrix_json,
    version_json,
)
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

WINDOW = 200
DATASET_ROWS = 1000


@dataclass
class Page:
    template: str
    title: str
    data: Callable[[], Any]  # the JSON answer, built only when asked for: the HTML does not need it
    context: dict[str, Any] = field(default_factory=dict)


def adapter_url(name: str) -> str:
    return f"/adapters/{quote(name, safe='')}"


def version_url(name: str, number: int) -> str:
    return f"{adapter_url(name)}/versions/{number}"


# ---- adapters -------------------------------------------------------------------------------------


def adapters_page(ledger: Ledger) -> Page:
    latest: dict[str, VersionSummary] = {}
    current: dict[str, VersionSummary] = {}
    for summary in ledger.summaries():  # one query for every adapter: the listing's fast path
        if summary.name not in latest or summary.number > latest[summary.name].number:
            latest[summary.name] = summary
        if summary.is_current:
            current[summary.name] = summary
    rows = []
    for adapter in ledger.adapters():
        newest = latest.get(adapter.name)
        live = current.get(adapter.name)
        held = False
        if newest is not None and not newest.is_current:
            # Held back = never current. Only an adapter whose newest version is not current needs its
            # alias history read, to tell a held-back update from one rolled back later.
            held = newest.number not in ever_current(ledger.history(adapter.name))
        shown = live or newest
        base = shown.base_model_id if shown else None
        rows.append(
            {
                "name": adapter.name,
                "current": live.ref if live else None,
                "base": base,
                "versions": adapter.versions,
                "latest": newest.ref if newest else None,
                "last_update": newest.created_at.isoformat() if newest else None,
                "latest_held_back": held,
                "threshold": adapter.max_regression,
            }
        )
    return Page("adapters.html", "Adapters", lambda: rows, {"rows": rows})


# ---- one adapter ----------------------------------------------------------------------------------


def adapter_page(ledger: Ledger, name: str) -> Page:
    summaries = ledger.summaries(name)
    if not summaries:
        known = {adapter.name for adapter in ledger.adapters()}
        if name not in known:
            raise NotFound(f"no adapter named {name!r}")
    history = ledger.history(name)
    ever = ever_current(history)
    threshold = ledger.threshold(name)
    first = ledger.score_matrix(name)
    matrices = [first] + [ledger.score_matrix(name, setting=other) for other in first.other_settings]
    held = {v.number for v in summaries} - ever
    shown = summaries[-WINDOW:]
    numbers = {v.number for v in shown}

    def data() -> dict[str, Any]:
        # Each matrix as `adapters evals --json` prints it: with NAME's retention searches.
        retention = ledger.retention_searches(name)
        return {
            "name": name,
            "threshold": threshold,
            "versions": len(summaries),
            "lineage": lineage_json(summaries),
            "matrices": [
                matrix_json(m, name=name, threshold=threshold, ever_current=ever) | {"retention": retention}
                for m in matrices
                if m.setting
            ],
            "history": history_json(history),
        }

    context = {
        "name": name,
        "threshold": threshold,
        "total": len(summaries),
        "shown": len(shown),
        "current": next((v for v in summaries if v.is_current), None),
        "graph": Markup(lineage_svg(shown, held=held, link=lambda n: version_url(name, n))),
        "tables": [
            _matrix_table(m, name, threshold, ever, numbers) for m in matrices if m.setting and m.sets
        ],
        "curves": Markup(curves_svg(first, held=held_back(first, ever), numbers=numbers)),
        "events": list(reversed(history))[:WINDOW],
        "event_total": len(history),
        "legend": f"{LEGEND} {SETTING_LEGEND}",
    }
    return Page("adapter.html", name, data, context)


def _css(relative: float | None, threshold: float) -> str:
    """The CLI's colours as classes: red past the gate, yellow worse, green better, grey noise."""
    if relative is None or relative != relative:
        return "flat"
    if relative > threshold:
        return "worse-gate"
    if relative > NOISE:
        return "worse"
    return "better" if relative < -NOISE else "flat"


def _matrix_table(
    matrix: ScoreMatrix, name: str, threshold: float, ever: set[int], numbers: set[int]
) -> dict[str, Any]:
    held = held_back(matrix, ever)
    columns = [
        {"label": s.label, "role": s.role if s.learned_by is None else f"update of v{s.learned_by}"}
        for s in matrix.sets
    ]
    bases = [
        {
            "title": "base" if len(matrix.bases) == 1 else f"base {key.split(':')[-1][:8]}",
            "cells": [f"{scores[s.digest]:.4f}" if s.digest in scores else "-" for s in matrix.sets],
        }
        for key, scores in matrix.bases.items()
    ]
    rows = []
    for row in matrix.rows:
        if row.version.number not in numbers:
            continue
        cells: list[dict[str, Any] | None] = []
        for eval_set in matrix.sets:
            cell = row.cells.get(eval_set.digest)
            if cell is None:
                cells.append(None)
                continue
            changes = [
                {"text": f"{percent(change.relative)}{tag}", "css": _css(change.relative, threshold)}
                for tag, change in (("p", cell.vs_parent), ("b", cell.vs_base))
                if change is not None
            ]
            cells.append({"nll": f"{cell.nll:.4f}", "changes": changes})
        metrics = row.metrics
        worst = metrics.max_forgetting
        rows.append(
            {
                "metrics": [
                    _metric(
                        None
                        if metrics.bwt is None
                        else f"{metrics.bwt:+.4f} ({percent(metrics.bwt_relative)})",
                        metrics.bwt_relative,
                        threshold,
                    ),
                    _metric(
                        forgetting_words(worst, matrix.eval_set(worst.digest).label) if worst else None,
                        worst.forgetting_relative if worst else None,
                        threshold,
                    ),
                    _metric(
                        percent(metrics.retention_relative) if metrics.retention else None,
                        metrics.retention_relative,
                        threshold,
                    ),
                ],
                "number": row.version.number,
                "parent": row.version.parent,
                "url": version_url(name, row.version.number),
                "current": row.version.current,
                "held": row.version.number in held,
                "cells": cells,
            }
        )
    return {
        "setting": setting_words(matrix),
        "other": settings_note(matrix, name),
        "columns": columns,
        "bases": bases,
        "rows": rows,
    }


def _metric(text: str | None, relative: float | None, threshold: float) -> dict[str, str]:
    return {"text": text or "-", "css": _css(relative, threshold) if text else "flat"}


# ---- one version ----------------------------------------------------------------------------------


def version_page(ledger: Ledger, name: str, number: int) -> Page:
    version = ledger.version(f"{name}@{number}")
    differences = ledger.diff(version.parent, version.ref).changes if version.parent else None
    current = next((a.current for a in ledger.adapters() if a.name == name), None)
    commands = version_commands(version, current)
    data = {
        "version": version_json(version, full=True),
        "diff": diff_json(version.parent, version.ref, differences)
        if version.parent and differences is not None
        else None,
        "commands": commands,
    }
    parent_number = number_of(version.parent, name)
    context = {
        "version": version,
        "fields": version_fields(version),
        "adapter_url": adapter_url(name),
        "parent_url": version_url(name, parent_number) if parent_number is not None else None,
        "diff": [(key, _value(left), _value(right)) for key, (left, right) in (differences or {}).items()],
        "commands": commands,
    }
    return Page("version.html", version.ref, lambda: data, context)


def version_fields(version: VersionRecord) -> list[tuple[str, str]]:
    """What ``adapters show`` prints, field by field (digests whole: they are what a user copies)."""
    base = version.base
    rows = [
        ("ref", version.ref + ("  (current)" if version.is_current else "")),
        ("kind", version.kind),
        ("parent", version.parent or "-"),
        ("inputs", ", ".join(f"{i.ref}×{i.weight:g}" for i in version.inputs) or "-"),
        ("aliases", ", ".join(version.aliases) or "-"),
        ("base", base.model_id + (f" @ {base.revision}" if base.revision else "")),
        ("base config", base.config_digest),
        ("base weights", base.weights_digest or "-"),
        ("artifact", version.artifact_digest),
        ("lora", ", ".join(f"{k}={v}" for k, v in version.lora.items()) or "-"),
        ("training", ", ".join(f"{k}={v}" for k, v in version.training.items() if v is not None) or "-"),
        ("seed", str(version.seed) if version.seed is not None else "-"),
        ("train tokens", f"{version.train_tokens:,}" if version.train_tokens is not None else "-"),
        ("final loss", f"{version.final_loss:.4f}" if version.final_loss is not None else "-"),
        ("libraries", ", ".join(f"{k} {v}" for k, v in version.libraries.items()) or "-"),
        ("created", f"{version.created_at:%Y-%m-%d %H:%M %Z} by {version.created_by} on {version.host}"),
    ]
    if version.note:
        rows.append(("note", version.note))
    for result in version.evals:
        rows.append(
            ("eval", f"{result.label or result.dataset_digest}: {result.metric} = {result.value:.4f} "
             f"({result.setting})")
        )  # fmt: skip
    for publication in version.publications:
        details = " ".join(f"{k}={v}" for k, v in publication.details.items())
        rows.append((publication.kind, f"{publication.target} {details}".strip()))
    return rows


def version_commands(version: VersionRecord, current: int | None) -> dict[str, str]:
    """Shell commands (quoted for a POSIX shell) to look at, reproduce, export or return to a version
    (``current``: the number of its adapter's current version)."""
    q = shlex.quote
    ref, name = version.ref, version.name
    commands = {"show": f"adapters show {q(ref)}"}
    if version.kind == "train":
        origin = f"--from {q(version.parent)}" if version.parent else f"--base {q(version.base.model_id)}"
        if version.base.revision and not version.parent:
            origin += f" --revision {q(version.base.revision)}"
        data = " ".join(
            f"--data {q(use.dataset.source or use.dataset.digest)}" for use in version.datasets
            if use.role == "train"
        )  # fmt: skip
        evals = " ".join(
            f"--eval {q(use.dataset.source or use.dataset.digest)}" for use in version.datasets
            if use.role == "eval"
        )  # fmt: skip
        seed = f" --seed {version.seed}" if version.seed is not None else ""
        commands["reproduce"] = (
            " ".join(part for part in (f"adapters train {q(name)} {origin}", data, evals) if part)
            + seed
            + "  # with the lora and training settings shown above"
        )
    elif version.kind == "stack" and version.inputs:
        inputs = " ".join(q(i.ref) for i in version.inputs)
        weights = ",".join(f"{i.weight:g}" for i in version.inputs)
        commands["reproduce"] = f"adapters stack {q(name)} {inputs} --weights {weights}"
    commands["export"] = f"adapters export {q(ref)} ./exports"
    if version.parent:
        commands["diff"] = f"adapters diff {q(version.parent)} {q(ref)}"
    if current is not None and version.number < current:
        reason = q(f"back to {ref}")
        commands["roll back to it"] = f"adapters rollback {q(name)} --to {q(ref)} --reason {reason}"
    elif not version.is_current:  # newer than current (held back, or rolled back from): promote it
        commands["make it current"] = f"adapters promote {q(ref)} --reason {q('why it is safe now')}"
    return commands


def _value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list):
        return "\n".join(_value(item) for item in value) or "none"
    return str(value)


# ---- datasets -------------------------------------------------------------------------------------


def datasets_page(ledger: Ledger, adapter: str | None) -> Page:
    uses = ledger.datasets(adapter)
    rows = [
        {
            "digest": use.dataset.digest,
            "rows": use.dataset.rows,
            "tokens": use.tokens,
            "source": use.dataset.source or "-",
            "ref": use.ref,
            "url": version_url(*_split(use.ref)),
            "role": use.role,
            "label": use.label or "",
        }
        for use in uses[:DATASET_ROWS]
    ]
    context = {"rows": rows, "total": len(uses), "adapter": adapter}
    return Page("datasets.html", "Datasets", lambda: datasets_json(uses), context)


def _split(ref: str) -> tuple[str, int]:
    name, _, number = ref.partition("@")
    return name, int(number) if number.isdigit() else 0

"""Eval suites and the forgetting gate.

An adapter's suite holds the eval split of every update (role ``update``) and general-text retention
sets (role ``retention``). A new version is scored on all of them; the gate compares it with its parent
on the sets that existed before this update — retention sets and earlier updates' eval sets — and holds
``current`` back when any of them got worse by more than the adapter's threshold.
"""

import tempfile
from dataclasses import dataclass
from pathlib import Path

from loraledger.cli.settings import Settings
from loraledger.registry import Registry
from loraledger.schemas.jobs import BaseSource, EvalScore
from loraledger.schemas.records import NewDataset, NewEval, VersionRecord
from loraledger.schemas.specs import Recipe


@dataclass(frozen=True)
class Regression:
    label: str
    before: float
    after: float

    @property
    def change(self) -> float:
        """Relative change of mean NLL: 0.05 is 5% worse."""
        return (self.after - self.before) / self.before


def suite_sets(registry: Registry, name: str) -> dict[str, tuple[str, str, NewDataset]]:
    """digest -> (label, role, dataset) for the adapter's current suite."""
    if not registry.exists(name):
        return {}
    return {
        entry.dataset.digest: (entry.label, entry.role, entry.dataset.as_new())
        for entry in registry.suite(name)
    }


def score_update(
    registry: Registry,
    name: str,
    parent: VersionRecord | None,
    source: BaseSource,
    adapter_dir: Path,
    new_sets: dict[str, NewDataset],
    recipe: Recipe,
    settings: Settings,
) -> tuple[list[NewEval], dict[str, tuple[str, str]]]:
    """Score the new adapter on its suite (plus this update's eval sets); make sure the parent and the
    base have scores on the gated sets too. Returns the new version's evals and digest -> (label, role)
    of the sets that existed before this update."""
    from loraledger.trainer.evaluate import score_sets

    earlier = suite_sets(registry, name)
    sets = {digest: (label, role, dataset) for digest, (label, role, dataset) in earlier.items()}
    for label, dataset in new_sets.items():
        sets.setdefault(dataset.digest, (label, "update", dataset))
    if not sets:
        return [], {}
    rows = {digest: registry.dataset_rows(digest) for digest in sets}
    quantize = recipe.training.quantize
    scores = score_sets(source, adapter_dir, rows, recipe.eval, quantize=quantize)
    evals = _evals(scores, sets)

    if parent is not None:
        scored = {(r.dataset_digest, r.metric) for r in registry.resolve(parent.ref).evals}
        missing = {d: rows[d] for d in earlier if (d, "nll") not in scored}
        if missing:
            with tempfile.TemporaryDirectory(prefix="loraledger-parent-") as scratch:
                parent_dir = registry.checkout(parent.ref, Path(scratch) / "adapter")
                parent_scores = score_sets(source, parent_dir, missing, recipe.eval, quantize=quantize)
            registry.record_evals(parent.ref, _evals(parent_scores, sets))

    base = parent.base if parent else None
    if base is not None:
        have = {(r.dataset_digest, r.metric) for r in registry.store.base_evals(base)}
        missing = {d: rows[d] for d in sets if (d, "nll") not in have}
        if missing:
            base_scores = score_sets(source, None, missing, recipe.eval, quantize=quantize)
            registry.store.add_base_evals(base, _evals(base_scores, sets))
    return evals, {digest: (label, role) for digest, (label, role, _) in earlier.items()}


def gate(
    registry: Registry,
    parent: VersionRecord,
    evals: list[NewEval],
    gated: dict[str, tuple[str, str]],
    threshold: float,
) -> list[Regression]:
    """Sets that existed before this update and got worse than the parent by more than ``threshold``."""
    before = {r.dataset_digest: r.value for r in registry.resolve(parent.ref).evals if r.metric == "nll"}
    regressions = []
    for result in evals:
        digest = result.dataset.digest
        if result.metric != "nll" or digest not in gated or digest not in before:
            continue
        regression = Regression(label=gated[digest][0], before=before[digest], after=result.value)
        if regression.change > threshold:
            regressions.append(regression)
    return regressions


def _evals(scores: dict[str, EvalScore], sets: dict[str, tuple[str, str, NewDataset]]) -> list[NewEval]:
    evals = []
    for digest, score in scores.items():
        label, _, dataset = sets[digest]
        evals.append(NewEval(dataset=dataset, metric="nll", value=score.nll, label=label))
        evals.append(NewEval(dataset=dataset, metric="perplexity", value=score.perplexity, label=label))
    return evals


def add_suite_file(registry: Registry, name: str, path: Path, *, role: str, label: str | None = None) -> str:
    """Read a file, keep a canonical copy, and put it in NAME's suite; returns the label used."""
    from loraledger.registry.digests import canonical_records
    from loraledger.trainer.datafiles import read_records

    loaded = read_records(path)
    dataset = registry.store_dataset(
        canonical_records(loaded.records), format=loaded.format, source=loaded.source
    )
    label = label or f"{role}: {path.stem}"
    entry = registry.add_to_suite(name, dataset, label=label, role=role)
    return entry.label

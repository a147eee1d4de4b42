"""Eval suites, scoring, and the forgetting gate.

An adapter's suite holds the eval split of every update (role ``update``) and general-text retention
sets (role ``retention``). A new version is scored on all of them; its parent and the base model are
scored on whatever they lack (the base once per dataset, then cached in the registry), so that every
cell of the matrix has something to compare with. The gate compares the new version with its parent on
the sets that existed before this update — retention sets and earlier updates' eval splits — and holds
``current`` back when any of them got worse by more than the adapter's threshold.

A score counts only in the setting it was made in (trainer/evaluate.py ``scoring_setting``): a
scorer reuses recorded scores of its own setting and computes the others, and the gate compares the
parent and the new version in the same setting.
"""

import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loraledger.registry import Registry
from loraledger.registry.forgetting import Regression, latest_scores, regressions
from loraledger.schemas.errors import Conflict
from loraledger.schemas.jobs import BaseSource, EvalScore
from loraledger.schemas.records import (
    BaseModelRecord,
    EvalResult,
    NewDataset,
    NewEval,
    SuiteEntry,
    VersionRecord,
)
from loraledger.schemas.specs import EvalSpec, Recipe

__all__ = [
    "Regression",
    "Scorer",
    "ScoringSet",
    "add_suite_file",
    "gate",
    "score_update",
    "suite_sets",
    "trained_options",
    "update_label",
]


@dataclass(frozen=True)
class ScoringSet:
    """A dataset to score, with the label its scores are recorded under."""

    label: str
    dataset: NewDataset
    role: str = "extra"


def suite_sets(registry: Registry, name: str) -> dict[str, ScoringSet]:
    """digest -> set, for the adapter's current suite (empty for an adapter not registered yet)."""
    if not registry.exists(name):
        return {}
    return {
        entry.dataset.digest: ScoringSet(entry.label, entry.dataset.as_new(), entry.role)
        for entry in registry.suite(name)
    }


def update_label(registry: Registry, name: str, dataset: NewDataset, taken: Iterable[str] = ()) -> str:
    """The label of an update's eval split: its label in the suite when it is there already (the same
    split given again), else the file's stem, made unique."""
    suite = suite_sets(registry, name)
    if dataset.digest in suite:
        return suite[dataset.digest].label
    used = {s.label for s in suite.values()} | set(taken)
    source = dataset.source or "eval"
    stem = Path(source).stem or "eval"
    label, n = stem, 2
    while label in used:
        label, n = f"{stem} ({n})", n + 1
    return label


def add_suite_file(registry: Registry, name: str, path: Path, *, label: str | None = None) -> SuiteEntry:
    """Read a file, keep a canonical copy, and add it to NAME's suite as a retention set."""
    from loraledger.registry.digests import canonical_records
    from loraledger.schemas.names import check_name
    from loraledger.trainer.datafiles import read_records

    check_name(name, "adapter name")
    loaded = read_records(path)
    dataset = registry.store_dataset(
        canonical_records(loaded.records), format=loaded.format, source=loaded.source
    )
    sets = suite_sets(registry, name)
    if dataset.digest in sets:  # the same records again: nothing to do, unless asked to relabel
        existing = sets[dataset.digest]
        if label is not None and label != existing.label:
            raise Conflict(f"{path} is already in {name}'s suite as {existing.label!r} ({existing.role})")
        return next(e for e in registry.suite(name) if e.dataset.digest == dataset.digest)
    label = label or (Path(loaded.source).stem or "retention")
    if any(s.label == label for s in sets.values()):
        raise Conflict(f"{name}'s suite already has a set labelled {label!r}: pass another --label")
    return registry.add_to_suite(name, dataset, label=label, role="retention")


@dataclass
class Scorer:
    """Scores adapters and base models on datasets kept in the registry, reusing recorded scores of
    its own setting (``setting``: how it loads models, recorded with every score it makes).

    The base model is located lazily (``source``): a request whose scores are all recorded already
    never loads a model.
    """

    registry: Registry
    base: BaseModelRecord
    source: Callable[[], BaseSource]
    spec: EvalSpec = field(default_factory=EvalSpec)
    quantize: str = "none"
    text_field: str = "text"
    stage: Callable[[str], None] = lambda message: None
    device: str | None = None  # None: this process's device (trainer/models.py pick_device)
    _source: BaseSource | None = field(default=None, init=False, repr=False)
    _setting: str | None = field(default=None, init=False, repr=False)

    def base_source(self) -> BaseSource:
        if self._source is None:
            self._source = self.source()
        return self._source

    @property
    def setting(self) -> str:
        """The scoring setting of this scorer, e.g. ``nf4/bf16 w512/s256`` (no model is loaded)."""
        if self._setting is None:
            from loraledger.trainer.evaluate import scoring_setting
            from loraledger.trainer.models import pick_device

            # Fixed here, so that what is loaded is what the setting says (score passes it on).
            self.device = self.device or pick_device()
            self._setting = scoring_setting(self.quantize, self.spec, self.device, text_field=self.text_field)
        return self._setting

    def score(self, adapter: Path | None, sets: Mapping[str, ScoringSet]) -> list[NewEval]:
        """Score (the base with) ``adapter`` on every set: NLL and perplexity per set."""
        from loraledger.trainer.evaluate import score_sets

        if not sets:
            return []
        setting = self.setting
        rows = {digest: self.registry.dataset_rows(digest) for digest in sets}
        scores = score_sets(
            self.base_source(),
            adapter,
            rows,
            self.spec,
            quantize=self.quantize,
            text_field=self.text_field,
            device=self.device,
        )
        return evals_from_scores(scores, sets, setting)

    def ensure_version(
        self, version: VersionRecord, sets: Mapping[str, ScoringSet], *, rescore: bool = False
    ) -> list[NewEval]:
        """Score ``version`` on the sets it has no NLL for in this setting (all of them with
        ``rescore``)."""
        recorded = [] if rescore else self.registry.resolve(version.ref).evals
        have = version_scores(recorded, version.ref, self.setting)
        missing = {digest: s for digest, s in sets.items() if digest not in have}
        if not missing:
            return []
        self.stage(f"scoring {version.ref} on {len(missing)} set(s)")
        with tempfile.TemporaryDirectory(prefix="loraledger-eval-") as scratch:
            adapter = self.registry.checkout(version.ref, Path(scratch) / "adapter")
            check_adapter_folder(version, adapter)
            evals = self.score(adapter, missing)
        self.registry.record_evals(version.ref, evals)
        return evals

    def ensure_base(self, sets: Mapping[str, ScoringSet], *, rescore: bool = False) -> list[NewEval]:
        """Score the base model on the sets it has no NLL for in this setting: once per dataset and
        setting, then cached."""
        have = {} if rescore else base_scores(self.registry, self.base, self.setting)
        missing = {digest: s for digest, s in sets.items() if digest not in have}
        if not missing:
            return []
        self.stage(f"scoring the base {self.base.model_id} on {len(missing)} set(s) (cached afterwards)")
        evals = self.score(None, missing)
        self.registry.record_base_evals(self.base, evals)
        return evals


def base_scores(registry: Registry, base: BaseModelRecord, setting: str) -> dict[str, float]:
    return latest_scores(registry.base_evals(base), setting=setting).get(None, {})


def version_scores(results: Iterable[EvalResult], ref: str, setting: str) -> dict[str, float]:
    return latest_scores(results, setting=setting).get(ref, {})


def trained_options(version: VersionRecord) -> dict[str, Any]:
    """The quantization, text field and eval spec ``version`` was trained and scored with, as Scorer
    keywords, so that scoring it again by hand gives numbers comparable with the train-time ones.
    What a version does not record (imports, stacks and merges; versions trained before the eval spec
    was recorded) is the default: full precision, ``text``, ``EvalSpec()``."""
    training = version.training
    recorded = training.get("eval")
    return {
        "quantize": training.get("quantize") or "none",
        "text_field": training.get("text_field") or "text",
        "spec": EvalSpec.model_validate(recorded) if isinstance(recorded, dict) else EvalSpec(),
    }


def check_adapter_folder(version: VersionRecord, folder: Path) -> None:
    if not (folder / "adapter_config.json").is_file():
        raise Conflict(f"{version.ref} ({version.kind}) holds no LoRA adapter to score")


def evals_from_scores(
    scores: Mapping[str, EvalScore], sets: Mapping[str, ScoringSet], setting: str
) -> list[NewEval]:
    evals = []
    for digest, score in scores.items():
        eval_set = sets[digest]
        for metric, value in (("nll", score.nll), ("perplexity", score.perplexity)):
            evals.append(
                NewEval(
                    dataset=eval_set.dataset,
                    metric=metric,
                    value=value,
                    setting=setting,
                    label=eval_set.label,
                )
            )
    return evals


def score_update(
    registry: Registry,
    name: str,
    parent: VersionRecord | None,
    source: BaseSource,
    base: BaseModelRecord,
    adapter_dir: Path,
    new_sets: Mapping[str, NewDataset],
    recipe: Recipe,
    stage: Callable[[str], None] = lambda message: None,
) -> tuple[list[NewEval], dict[str, str]]:
    """Score a freshly trained adapter on its whole suite plus this update's eval splits (label ->
    dataset), in the setting of its recipe (its quantization, eval spec and text field); make sure the
    parent and the base have scores on all of them in that setting too. Returns the new version's
    evals and the gated sets (digest -> label): those in the suite before this update."""
    earlier = suite_sets(registry, name)
    sets = dict(earlier)
    for label, dataset in new_sets.items():
        sets.setdefault(dataset.digest, ScoringSet(label, dataset, "update"))
    scorer = Scorer(
        registry,
        base,
        lambda: source,
        spec=recipe.eval,
        quantize=recipe.training.quantize,
        text_field=recipe.training.text_field,
        stage=stage,
    )
    stage(f"scoring the new adapter on {len(sets)} eval set(s)")
    evals = scorer.score(adapter_dir, sets)
    if parent is not None:
        scorer.ensure_version(parent, sets)
    scorer.ensure_base(sets)
    return evals, {digest: s.label for digest, s in earlier.items()}


def gate(
    registry: Registry,
    parent: VersionRecord,
    evals: list[NewEval],
    gated: Mapping[str, str],
    threshold: float,
) -> list[Regression]:
    """Gated sets (digest -> label) on which the new version is worse than its parent by more than
    ``threshold`` (relative NLL), worst first. Each new score is compared with the parent's score in
    the same setting only (``score_update`` makes sure the parent has one)."""
    recorded = registry.resolve(parent.ref).evals
    found: list[Regression] = []
    for setting in sorted({result.setting for result in evals if result.metric == "nll"}):
        before = version_scores(recorded, parent.ref, setting)
        after = {r.dataset.digest: r.value for r in evals if r.metric == "nll" and r.setting == setting}
        found += regressions(before, after, gated, threshold)
    return sorted(found, key=lambda r: r.change, reverse=True)


def advice(name: str, ref: str, regressed: list[Regression], *, promoted: bool) -> list[str]:
    """What to tell a user whose update forgot: which sets, how much, and what to do next."""
    lines = [
        f"{r.label}: NLL {r.before:.4f} -> {r.after:.4f} ({r.change:+.1%}) against the parent"
        for r in regressed
    ]
    if promoted:
        lines.append(f"{name}@current moved anyway (--force); undo with `adapters rollback {name}`")
    else:
        lines.append(
            f"{ref} is registered but {name}@current did not move. Retrain with --replay 0.3 to mix "
            f"earlier data back in (and/or a lower --lr), accept it with `adapters promote {ref}`, "
            f"or keep the current version"
        )
    return lines

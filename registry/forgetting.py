"""Forgetting, measured: an adapter's versions scored on its eval sets, and the continual-learning
metrics over that matrix. Pure: plain values in, plain values out; no torch, no database.

Scores are mean token negative log-likelihoods (NLL, nats): **lower is better**, so every change below
is ``after - before`` and a **positive change means worse**.

- ``vs parent`` / ``vs base``: a version's NLL on a set minus its parent's (or its base model's).
- **Backward transfer** (BWT) of version v: the mean, over the earlier updates j in v's lineage, of
  ``NLL_v(j) - NLL_k(j)``, where k is the version that learned j: the first in v's lineage whose update
  came with j's eval split.
  Positive BWT = forgetting; negative BWT = later updates made earlier ones better. (Avalanche defines
  BWT on accuracy, where the sign is the other way round: there, negative means forgetting.)
- **Forgetting** of update j at version v: ``NLL_v(j)`` minus the best (lowest) NLL any version from k
  up to v's parent reached on j; **maximum forgetting** is the largest over j. Zero or negative: nothing
  forgotten.
- **Retention**: the change on general-text retention sets against the base model.
- The **gate** flags sets whose NLL rose by more than a relative threshold against the parent.

Every score carries the setting it was made in (how the model was loaded: 4-bit or full weights,
compute dtype, window): a matrix holds the scores of one setting, versions and base alike, because a
4-bit NLL minus an fp32 one measures quantization, not forgetting.
"""

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from loraledger.schemas.records import EvalResult, SuiteEntry, VersionRecord

SetRole = Literal["update", "retention", "extra"]
METRIC = "nll"


@dataclass(frozen=True)
class MatrixColumn:
    """A column of the matrix: one dataset, by digest."""

    digest: str
    label: str
    role: SetRole
    learned_by: int | None = None  # the version whose update brought this eval split


@dataclass(frozen=True)
class VersionScores:
    """A row of the matrix: one version's NLL per dataset digest."""

    number: int
    parent: int | None  # the parent's number within the same adapter
    scores: Mapping[str, float]
    base: str = "base"  # key of its base model's scores in the matrix
    current: bool = False
    learned: frozenset[str] = frozenset()  # eval splits that came with this version's own update


@dataclass(frozen=True)
class Change:
    before: float
    after: float

    @property
    def absolute(self) -> float:
        return self.after - self.before

    @property
    def relative(self) -> float:
        """0.05 = 5% worse; NaN when there is nothing to compare with."""
        if not (math.isfinite(self.before) and math.isfinite(self.after)) or self.before == 0:
            return math.nan
        return (self.after - self.before) / self.before


@dataclass(frozen=True)
class Cell:
    nll: float
    vs_parent: Change | None
    vs_base: Change | None


@dataclass(frozen=True)
class UpdateForgetting:
    """How one earlier update's eval set fares at a later version."""

    digest: str
    learned_by: int
    after_learning: float  # NLL of version ``learned_by`` on the set
    best: float  # lowest NLL from ``learned_by`` up to the parent of the version measured
    now: float

    @property
    def transfer(self) -> float:
        """This set's BWT term: positive = forgotten."""
        return self.now - self.after_learning

    @property
    def forgetting(self) -> float:
        return self.now - self.best

    @property
    def forgetting_relative(self) -> float:
        return Change(self.best, self.now).relative


@dataclass(frozen=True)
class VersionMetrics:
    number: int
    updates: list[UpdateForgetting]
    retention: dict[str, Change]  # retention set digest -> change against the base

    @property
    def bwt(self) -> float | None:
        return _mean([u.transfer for u in self.updates])

    @property
    def bwt_relative(self) -> float | None:
        return _mean([Change(u.after_learning, u.now).relative for u in self.updates])

    @property
    def max_forgetting(self) -> UpdateForgetting | None:
        return max(self.updates, key=lambda u: u.forgetting, default=None)

    @property
    def retention_relative(self) -> float | None:
        """Mean relative change on the retention sets against the base (0.1 = 10% worse)."""
        return _mean([change.relative for change in self.retention.values()])


@dataclass(frozen=True)
class Row:
    version: VersionScores
    cells: dict[str, Cell]
    metrics: VersionMetrics


@dataclass(frozen=True)
class ScoreMatrix:
    sets: list[MatrixColumn]
    bases: dict[str, dict[str, float]]  # base key -> digest -> NLL
    rows: list[Row] = field(default_factory=list)
    setting: str | None = None  # the scoring setting of every number in it (None: no scores at all)
    settings: list[str] = field(default_factory=list)  # every setting the versions have scores in

    @property
    def other_settings(self) -> list[str]:
        return [s for s in self.settings if s != self.setting]

    def eval_set(self, digest: str) -> MatrixColumn:
        return next(s for s in self.sets if s.digest == digest)

    def row(self, number: int) -> Row:
        return next(r for r in self.rows if r.version.number == number)


@dataclass(frozen=True)
class Regression:
    """A gated set that got worse than the parent by more than the threshold."""

    digest: str
    label: str
    before: float
    after: float

    @property
    def change(self) -> float:
        """Relative change of mean NLL: 0.05 is 5% worse."""
        return Change(self.before, self.after).relative


def _mean(values: Iterable[float]) -> float | None:
    finite = [v for v in values if math.isfinite(v)]
    return sum(finite) / len(finite) if finite else None


def lineage(number: int, versions: Mapping[int, VersionScores]) -> list[int]:
    """Version numbers from the root of ``number``'s lineage down to ``number`` itself."""
    path = [number]
    seen = {number}  # a set, not the list: lineages run to thousands of versions
    while (parent := versions[path[-1]].parent) is not None and parent in versions and parent not in seen:
        path.append(parent)
        seen.add(parent)
    return path[::-1]


def version_metrics(
    number: int,
    versions: Mapping[int, VersionScores],
    sets: Sequence[MatrixColumn],
    base: Mapping[str, float],
) -> VersionMetrics:
    now = versions[number].scores
    updates = []
    earlier: list[int] | None = None
    for eval_set in sets:
        if eval_set.role != "update" or eval_set.digest not in now:
            continue
        if earlier is None:  # walked only when an update's set needs it: it is O(depth) per version
            earlier = lineage(number, versions)[:-1]
        # Learned by the first version of this lineage that trained with the split: on another branch
        # the same split may have come with another version than the one that added it to the suite.
        learned = next((n for n in earlier if eval_set.digest in versions[n].learned), None)
        if learned is None and eval_set.learned_by in earlier:
            learned = eval_set.learned_by
        if learned is None:
            continue
        since = [versions[n].scores.get(eval_set.digest) for n in earlier[earlier.index(learned) :]]
        after_learning = versions[learned].scores.get(eval_set.digest)
        known = [score for score in since if score is not None]
        if after_learning is None or not known:
            continue  # the learning version was never scored on its own split (--no-eval)
        updates.append(
            UpdateForgetting(
                digest=eval_set.digest,
                learned_by=learned,
                after_learning=after_learning,
                best=min(known),
                now=now[eval_set.digest],
            )
        )
    retention = {
        s.digest: Change(base[s.digest], now[s.digest])
        for s in sets
        if s.role == "retention" and s.digest in now and s.digest in base
    }
    return VersionMetrics(number=number, updates=updates, retention=retention)


def score_matrix(
    versions: Sequence[VersionScores],
    sets: Sequence[MatrixColumn],
    bases: Mapping[str, Mapping[str, float]],
    *,
    setting: str | None = None,
    settings: Sequence[str] = (),
) -> ScoreMatrix:
    by_number = {v.number: v for v in versions}
    rows = []
    for version in sorted(versions, key=lambda v: v.number):
        base = bases.get(version.base, {})
        parent = by_number.get(version.parent) if version.parent is not None else None
        cells = {
            digest: Cell(
                nll=value,
                vs_parent=Change(parent.scores[digest], value)
                if parent and digest in parent.scores
                else None,
                vs_base=Change(base[digest], value) if digest in base else None,
            )
            for digest, value in version.scores.items()
        }
        metrics = version_metrics(version.number, by_number, sets, base)
        rows.append(Row(version=version, cells=cells, metrics=metrics))
    return ScoreMatrix(
        sets=list(sets),
        bases={k: dict(v) for k, v in bases.items()},
        rows=rows,
        setting=setting,
        settings=list(settings),
    )


def regressions(
    before: Mapping[str, float],
    after: Mapping[str, float],
    gated: Mapping[str, str],
    threshold: float,
) -> list[Regression]:
    """Sets in ``gated`` (digest -> label) whose NLL rose from ``before`` to ``after`` by more than
    ``threshold`` (relative), worst first. Sets missing on either side are not judged."""
    found = [
        Regression(digest=digest, label=label, before=before[digest], after=after[digest])
        for digest, label in gated.items()
        if digest in before and digest in after
    ]
    return sorted(
        (r for r in found if math.isfinite(r.change) and r.change > threshold),
        key=lambda r: r.change,
        reverse=True,
    )


# ---- from registry records ------------------------------------------------------------------------


def latest_scores(
    results: Iterable[EvalResult], metric: str = METRIC, *, setting: str | None = None
) -> dict[str | None, dict[str, float]]:
    """ref (None for a base model) -> digest -> the most recent value of ``metric`` (in ``setting``
    only, when given: a score made in another setting is no score for it)."""
    table: dict[str | None, dict[str, float]] = {}
    for result in sorted(results, key=lambda r: r.created_at):
        if result.metric == metric and (setting is None or result.setting == setting):
            table.setdefault(result.ref, {})[result.dataset_digest] = result.value
    return table


def settings_by_recency(results: Iterable[EvalResult], metric: str = METRIC) -> list[str]:
    """The settings ``metric`` was scored in, the one of the most recent score first."""
    newest: dict[str, float] = {}
    for result in results:
        if result.metric == metric:
            moment = result.created_at.timestamp()
            newest[result.setting] = max(moment, newest.get(result.setting, moment))
    return sorted(newest, key=lambda setting: (-newest[setting], setting))


def newest_setting(results: Iterable[EvalResult], metric: str = METRIC) -> str | None:
    """The setting of the most recent score: the one to show when nobody asked for another."""
    found = settings_by_recency(results, metric)
    return found[0] if found else None


def from_records(
    versions: Sequence[VersionRecord],
    suite: Sequence[SuiteEntry],
    results: Iterable[EvalResult],
    base_results: Mapping[str, Iterable[EvalResult]],
    *,
    setting: str | None = None,
) -> ScoreMatrix:
    """The matrix of one adapter from what the registry holds: its versions, its suite, the eval
    results of its versions, and the results of each base model (keyed by base fingerprint).

    Only scores in one setting enter it: ``setting``, or by default the setting of the most recent
    score among the adapter's versions. Columns: the suite in the order it was built, then any other
    set a version was scored on in that setting (``adapters eval --data``) as role ``extra``."""
    results = list(results)
    base_results = {key: list(found) for key, found in base_results.items()}
    settings = settings_by_recency(results)
    if setting is None:  # with no version scored yet, the base's scores (`adapters eval NAME@base`)
        newest = settings or settings_by_recency(r for found in base_results.values() for r in found)
        setting = newest[0] if newest else None
    results = [result for result in results if result.setting == setting]
    scores = latest_scores(results)
    sets = [
        MatrixColumn(
            digest=entry.dataset.digest,
            label=entry.label,
            role="update" if entry.role == "update" else "retention",
            learned_by=entry.added_by_version if entry.role == "update" else None,
        )
        for entry in suite
    ]
    in_suite = {s.digest for s in sets}
    for result in results:
        if result.metric == METRIC and result.dataset_digest not in in_suite:
            in_suite.add(result.dataset_digest)
            label = result.label or result.dataset_digest.split(":")[-1][:12]
            sets.append(MatrixColumn(digest=result.dataset_digest, label=label, role="extra"))
    bases = {key: latest_scores(found, setting=setting).get(None, {}) for key, found in base_results.items()}
    rows = []
    for version in versions:
        parent_name, _, parent_number = (version.parent or "").rpartition("@")
        rows.append(
            VersionScores(
                number=version.number,
                parent=int(parent_number) if parent_name == version.name else None,
                scores=scores.get(version.ref, {}),
                base=version.base.fingerprint,
                current=version.is_current,
                learned=frozenset(use.dataset.digest for use in version.datasets if use.role == "eval"),
            )
        )
    return score_matrix(rows, sets, bases, setting=setting, settings=settings)

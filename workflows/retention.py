"""The retention budget: an update that forgets more than ``max_forgetting`` is turned into one that
does not, cheapest remedy first, and the way there is recorded (docs/retention.md).

    raw update scored -> within budget? done
    -> 1. strength: candidates between the start (parent, or the base for a first version) and the raw
          update, at strength alpha in (0, 1], built exactly (trainer/scaling.py) and scored on the
          suite; bisection finds the largest alpha within the budget
    -> kept share of the raw update's domain gain >= min_gain_share (the usefulness floor)? chosen
    -> 2. replay: retrain with replay (lineage data and --replay-data) at increasing shares; the first
          within the budget and above the floor is chosen (bounded by the recipe's list of shares)
    -> else: nothing meets the budget; the raw update is registered, held back, with the trace

Forgetting of a candidate on a gated set (retention sets and earlier updates' eval splits) is its
relative NLL rise against the start; its domain gain is the mean relative NLL drop on this update's
own eval splits, and its gain share that gain over the raw update's. Everything is searched before
anything is registered: a crash mid-search leaves nothing behind (at most files in the run folder).
"""

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from loraledger import faults
from loraledger.registry import Registry
from loraledger.schemas.errors import BudgetNotMet
from loraledger.schemas.jobs import BaseSource
from loraledger.schemas.records import (
    BaseModelRecord,
    NewDataset,
    NewDatasetUse,
    NewEval,
    NewVersion,
    VersionRecord,
)
from loraledger.schemas.specs import Recipe
from loraledger.suites import Scorer, ScoringSet, base_scores, suite_sets, version_scores

Remedy = Literal["raw", "strength", "replay"]
__all__ = ["BudgetNotMet", "RetentionOutcome", "Search", "largest_within", "meet_budget", "register_outcome"]


@dataclass
class Retrained:
    """What a replay retraining hands back (training.py builds it)."""

    adapter_dir: Path
    seconds: float
    final_loss: float | None
    train_tokens: int
    replay_uses: list[NewDatasetUse]


@dataclass
class Candidate:
    remedy: Remedy
    alpha: float
    replay: float
    scores: dict[str, float]  # label -> NLL, every set scored
    forgetting: dict[str, float]  # gated label -> relative NLL change against the start
    gain_share: float | None  # None: the raw update gained nothing to share
    seconds: float  # building (or retraining) plus scoring, wall clock
    within_budget: bool
    useful: bool
    folder: Path | None = field(default=None, repr=False)
    evals: list[NewEval] = field(default_factory=list, repr=False)
    retrained: Retrained | None = field(default=None, repr=False)
    cpu_seconds: float = 0.0  # the same span in CPU time (all threads): what it cost on a busy machine

    @property
    def worst(self) -> float:
        return max(self.forgetting.values(), default=0.0)

    @property
    def acceptable(self) -> bool:
        return self.within_budget and self.useful

    def to_dict(self, chosen: bool = False) -> dict[str, Any]:
        return {
            "remedy": self.remedy,
            "alpha": self.alpha,
            "replay": self.replay,
            "forgetting": self.forgetting,
            "worst_forgetting": self.worst,
            "gain_share": self.gain_share,
            "scores": self.scores,
            "seconds": round(self.seconds, 3),
            "cpu_seconds": round(self.cpu_seconds, 3),
            "within_budget": self.within_budget,
            "useful": self.useful,
            "chosen": chosen,
        }


@dataclass
class RetentionOutcome:
    budget: float
    min_gain_share: float
    reference: str  # what forgetting is measured against: the parent's ref, or "base"
    setting: str
    train_seconds: float
    candidates: list[Candidate]
    chosen: Candidate | None
    raw_ref: str | None = None  # filled in when the raw update is registered

    @property
    def searched(self) -> bool:
        """Whether the raw update was over the budget (so a search ran, whatever it found)."""
        return not self.candidates[0].within_budget

    @property
    def met(self) -> bool:
        return self.chosen is not None

    @property
    def search_seconds(self) -> float:
        return sum(c.seconds for c in self.candidates)

    def seconds_of(self, remedy: Remedy) -> float:
        return sum(c.seconds for c in self.candidates if c.remedy == remedy)

    def trace(self) -> dict[str, Any]:
        """What the registry keeps (``training["retention"]`` of the raw and the chosen version)."""
        chosen = self.chosen
        return {
            "budget": self.budget,
            "min_gain_share": self.min_gain_share,
            "reference": self.reference,
            "setting": self.setting,
            "remedy": "unmet" if chosen is None else ("none" if chosen.remedy == "raw" else chosen.remedy),
            "alpha": chosen.alpha if chosen else None,
            "replay": chosen.replay if chosen else None,
            "raw": self.raw_ref,
            "train_seconds": round(self.train_seconds, 3),
            "search_seconds": {
                "strength": round(self.seconds_of("strength"), 3),
                "replay": round(self.seconds_of("replay"), 3),
            },
            "candidates": [c.to_dict(chosen=c is chosen) for c in self.candidates],
        }


@dataclass
class Search:
    """Everything the search reads; training.py fills it after scoring and the gate."""

    registry: Registry
    name: str
    parent: VersionRecord | None
    source: BaseSource
    base: BaseModelRecord
    recipe: Recipe
    raw_dir: Path
    raw_evals: list[NewEval]
    eval_sets: Mapping[str, NewDataset]  # label -> this update's eval splits
    gated: Mapping[str, str]  # digest -> label: the sets in the suite before this update
    train_seconds: float
    work_dir: Path
    retrain: Callable[[float], Retrained | None] | None = None
    stage: Callable[[str], None] = lambda message: None


def largest_within(within: Callable[[float], bool], steps: int) -> float:
    """The largest alpha on the grid k / 2**steps for which ``within(alpha)`` holds, by bisection,
    given that it holds at 0 and fails at 1 and flips once in between (0 when no grid point > 0 does)."""
    low, high = 0.0, 1.0
    for _ in range(steps):
        middle = (low + high) / 2
        if within(middle):
            low = middle
        else:
            high = middle
    return low


def meet_budget(search: Search) -> RetentionOutcome:
    """Score the raw update against the budget and, when it forgets too much, search (module doc)."""
    spec = search.recipe.retention
    assert spec.max_forgetting is not None
    budget = spec.max_forgetting
    scorer = Scorer(
        search.registry,
        search.base,
        lambda: search.source,
        spec=search.recipe.eval,
        quantize=search.recipe.training.quantize,
        text_field=search.recipe.training.text_field,
    )
    setting = scorer.setting
    sets = dict(suite_sets(search.registry, search.name))
    for label, dataset in search.eval_sets.items():
        sets.setdefault(dataset.digest, ScoringSet(label, dataset, "update"))
    labels = {digest: s.label for digest, s in sets.items()}
    # This update's own splits measure its gain, also when the same split is in the suite already (an
    # update trained again); they are not where it can forget.
    domain = [dataset.digest for dataset in search.eval_sets.values()]
    gated = {digest: label for digest, label in search.gated.items() if digest not in domain}
    if search.parent is not None:
        recorded = search.registry.resolve(search.parent.ref).evals
        start = version_scores(recorded, search.parent.ref, setting)
    else:
        start = base_scores(search.registry, search.base, setting)

    def nll_of(evals: list[NewEval]) -> dict[str, float]:
        return {e.dataset.digest: e.value for e in evals if e.metric == "nll" and e.setting == setting}

    def gain(nll: Mapping[str, float]) -> float:
        drops = [(start[d] - nll[d]) / start[d] for d in domain if d in start and d in nll]
        return sum(drops) / len(drops) if drops else 0.0

    raw_gain = gain(nll_of(search.raw_evals))

    def candidate(
        remedy: Remedy, alpha: float, replay: float, evals: list[NewEval], seconds: float
    ) -> Candidate:
        nll = nll_of(evals)
        forgetting = {
            label: (nll[d] - start[d]) / start[d]
            for d, label in gated.items()
            if d in nll and d in start and start[d]
        }
        share = gain(nll) / raw_gain if raw_gain > 0 else None
        return Candidate(
            remedy=remedy,
            alpha=alpha,
            replay=replay,
            scores={labels.get(d, d): value for d, value in nll.items()},
            forgetting=forgetting,
            gain_share=share,
            seconds=seconds,
            within_budget=max(forgetting.values(), default=0.0) <= budget,
            # A floor of 0 is no floor: even an update that gained nothing on its split may be weakened.
            useful=spec.min_gain_share == 0 or (share is not None and share >= spec.min_gain_share),
            evals=evals,
        )

    raw = candidate("raw", 1.0, search.recipe.training.replay, search.raw_evals, 0.0)
    raw.folder = search.raw_dir
    outcome = RetentionOutcome(
        budget=budget,
        min_gain_share=spec.min_gain_share,
        reference=search.parent.ref if search.parent else "base",
        setting=setting,
        train_seconds=search.train_seconds,
        candidates=[raw],
        chosen=raw if raw.within_budget else None,
    )
    if raw.within_budget:
        return outcome

    # 1. Strength: bisection over alpha, each alpha built and scored once.
    from loraledger.trainer.scaling import NotScalable, scaled_adapter

    parent_dir: Path | None = None
    by_alpha: dict[float, Candidate] = {}

    def strength(alpha: float) -> bool:
        nonlocal parent_dir
        started, cpu = time.perf_counter(), time.process_time()
        if search.parent is not None and parent_dir is None:
            parent_dir = search.registry.checkout(search.parent.ref, search.work_dir / "parent")
        folder = scaled_adapter(search.raw_dir, parent_dir, alpha, search.work_dir / f"alpha-{alpha:.6f}")
        search.stage(f"retention budget {budget:.1%}: scoring strength {alpha:.4g}")
        evals = scorer.score(folder, sets)
        found = candidate(
            "strength", alpha, search.recipe.training.replay, evals, time.perf_counter() - started
        )
        found.folder, found.cpu_seconds = folder, time.process_time() - cpu
        by_alpha[alpha] = found
        outcome.candidates.append(found)
        faults.point("retention-candidate")
        return found.within_budget

    try:
        best = largest_within(strength, spec.bisection_steps)
    except NotScalable as exc:
        search.stage(f"retention budget: {exc}; trying replay")
        best = 0.0
    if best > 0 and by_alpha[best].acceptable:
        outcome.chosen = by_alpha[best]
        return outcome

    # 2. Replay: retrain at increasing shares; the first acceptable one is chosen.
    if search.retrain is None:
        return outcome
    for share in spec.replay_shares:
        search.stage(f"retention budget {budget:.1%}: retraining with {share:.0%} replay")
        started, cpu = time.perf_counter(), time.process_time()
        retrained = search.retrain(share)
        if retrained is None:
            search.stage("retention budget: no earlier data to replay (pass --replay-data)")
            break
        evals = scorer.score(retrained.adapter_dir, sets)
        found = candidate("replay", 1.0, share, evals, time.perf_counter() - started)
        found.folder, found.retrained = retrained.adapter_dir, retrained
        found.cpu_seconds = time.process_time() - cpu
        outcome.candidates.append(found)
        faults.point("retention-candidate")
        if found.acceptable:
            outcome.chosen = found
            return outcome
    return outcome


def register_outcome(
    registry: Registry,
    outcome: RetentionOutcome,
    raw_new: NewVersion,
    raw: VersionRecord,
    current_at_start: int | None,
) -> VersionRecord:
    """After the raw update is registered (held back, with the trace): register the chosen candidate
    as a version derived from it and make it current; or, when nothing met the budget, raise
    ``BudgetNotMet`` (the raw update and the trace stay inspectable)."""
    faults.point("retention-register")
    chosen = outcome.chosen
    if chosen is None:
        best = min(outcome.candidates, key=lambda c: c.worst)
        raise BudgetNotMet(
            f"no candidate of {raw.ref} forgets within {outcome.budget:.1%} while keeping "
            f"{outcome.min_gain_share:.0%} of its gain (least forgetting: {best.worst:+.1%}, "
            f"{best.remedy} alpha={best.alpha:g} replay={best.replay:g}); nothing went live: the search "
            f"is recorded on {raw.ref} (`adapters show {raw.ref}`)",
            outcome,
        )
    assert chosen.folder is not None
    from loraledger.trainer.scaling import combined_lora

    datasets = raw_new.datasets
    training = raw_new.training | {"retention": outcome.trace()}
    update: dict[str, Any] = {}
    if chosen.retrained is not None:
        datasets = [use for use in datasets if use.role != "replay"] + chosen.retrained.replay_uses
        training |= {
            "replay": chosen.replay,
            "replay_rows": sum(use.rows for use in chosen.retrained.replay_uses),
        }
        update = {"final_loss": chosen.retrained.final_loss, "train_tokens": chosen.retrained.train_tokens}
    new = raw_new.model_copy(
        update={
            "parent": raw.ref,
            "lora": combined_lora(raw_new.lora, chosen.folder),
            "training": training,
            "artifact_digest": registry.put_artifact(chosen.folder),
            "datasets": datasets,
            "evals": chosen.evals,
            "note": (raw_new.note + "; " if raw_new.note else "") + describe(outcome),
            **update,
        }
    )
    return registry.register(
        new,
        promote=True,
        reason=f"retention budget {outcome.budget:.1%}: {describe(outcome)}",
        only_if_current=(current_at_start,),
    )


def describe(outcome: RetentionOutcome) -> str:
    chosen = outcome.chosen
    if chosen is None:
        return "nothing within the budget"
    if chosen.remedy == "strength":
        return f"raw update at strength {chosen.alpha:g}"
    if chosen.remedy == "replay":
        return f"retrained with {chosen.replay:.0%} replay"
    return "raw update within the budget"

"""The retention budget: an update that forgets more than ``max_forgetting`` is turned into one that
does not, cheapest remedy first, and the way there is recorded (docs/retention.md).

    raw update scored -> within budget? done
    -> 1. strength: candidates between the start (parent, or the base for a first version) and the raw
          update, at strength alpha in (0, 1], built exactly (trainer/scaling.py); a bracketing search
          over the grid k / 2**bisection_steps finds the largest alpha within the budget
    -> kept share of the raw update's domain gain >= min_gain_share (the usefulness floor)? chosen
    -> 2. replay: retrain with replay (lineage data and --replay-data) at increasing shares; the first
          within the budget and above the floor is chosen (bounded by the recipe's list of shares)
    -> else: nothing meets the budget; the raw update is registered, held back, with the trace

Forgetting of a candidate on a gated set (retention sets and earlier updates' eval splits) is its
relative NLL rise against the start; its domain gain is the mean relative NLL drop on this update's
own eval splits, and its gain share that gain over the raw update's. Everything is searched before
anything is registered: a crash mid-search leaves nothing behind (at most files in the run folder).

What keeps the search cheap next to training (benchmarks/retention.py):
- one scoring session: the base is loaded and the sets tokenized once; each candidate's tensors are
  swapped into the loaded model (trainer/evaluate.py ``ScoringSession``);
- the search probes a candidate on the sets *at risk* only (those the raw update pushed over the
  budget), worst first, and stops at the first one over the budget; the candidate it settles on is
  then scored on every set, and if another set is over the budget there, that set joins the ones at
  risk and the search goes on below that alpha. So the chosen candidate is always scored in full;
  the probes it passed through carry the scores of the sets they were probed on (``complete: false``);
- the next alpha is placed where the measured forgetting crosses the budget (interpolation, with
  the Illinois correction against stalling, and plain bisection after ``bisection_steps`` probes):
  two to four candidates instead of one per bisection step; on a monotone curve the result is the
  bisection's.
"""

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from loraledger import faults
from loraledger.registry import Registry
from loraledger.schemas.errors import BudgetNotMet
from loraledger.schemas.jobs import BaseSource, EvalScore
from loraledger.schemas.records import (
    BaseModelRecord,
    NewDataset,
    NewDatasetUse,
    NewEval,
    NewVersion,
    VersionRecord,
)
from loraledger.schemas.specs import Recipe
from loraledger.suites import Scorer, ScoringSet, base_scores, evals_from_scores, suite_sets, version_scores

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
    complete: bool = True  # scored on every set (a probe is scored on the sets at risk only)

    @property
    def worst(self) -> float:
        return max(self.forgetting.values(), default=0.0)

    @property
    def acceptable(self) -> bool:
        return self.within_budget and self.useful and self.complete

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
            "complete": self.complete,
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


def largest_within(
    excess: Callable[[float], float],
    steps: int,
    *,
    low: tuple[float, float],
    high: tuple[float, float],
) -> float:
    """The largest alpha on the grid k / 2**steps in [low, high) with ``excess(alpha) <= 0``, given the
    bracket's ends as (alpha, excess): ``excess(low) <= 0 < excess(high)`` (both on the grid; neither
    is probed). On a monotone excess this is bisection's answer; the probes are placed where the line
    through the bracket's ends crosses 0 (regula falsi on the grid), with the Illinois correction
    (a stale end's excess halved) so that a curved excess does not stall it, and bisection once
    ``steps`` probes have not closed the bracket."""
    scale = 1 << steps
    lo, hi = round(low[0] * scale), round(high[0] * scale)
    f_lo, f_hi = low[1], high[1]
    if not (lo < hi and f_lo <= 0 < f_hi):
        raise ValueError(f"not a bracket: excess {f_lo:g} at {low[0]:g}, {f_hi:g} at {high[0]:g}")
    probes, side = 0, 0
    while hi - lo > 1:
        # Where the line through the ends crosses 0; bisection once interpolation has had its chance.
        guess = round(lo + (hi - lo) * -f_lo / (f_hi - f_lo)) if probes < steps else (lo + hi) // 2
        k = min(max(guess, lo + 1), hi - 1)
        value = excess(k / scale)
        probes += 1
        if value <= 0:
            lo, f_lo = k, value
            f_hi = f_hi / 2 if side == -1 else f_hi  # the high end stayed twice: Illinois
            side = -1
        else:
            hi, f_hi = k, value
            f_lo = f_lo / 2 if side == 1 else f_lo
            side = 1
    return lo / scale


@dataclass
class Judge:
    """Turns a candidate's scores into its forgetting, gain share and verdict against the budget."""

    budget: float
    min_gain_share: float
    setting: str
    start: Mapping[str, float]  # digest -> NLL of where the update started (parent or base)
    gated: Mapping[str, str]  # digest -> label: where the update may forget
    domain: list[str]  # this update's own eval splits: where it gains
    labels: Mapping[str, str]  # digest -> label, of every set
    raw_gain: float = 0.0

    def nll_of(self, evals: list[NewEval]) -> dict[str, float]:
        return {e.dataset.digest: e.value for e in evals if e.metric == "nll" and e.setting == self.setting}

    def gain(self, nll: Mapping[str, float]) -> float | None:
        drops = [
            (self.start[d] - nll[d]) / self.start[d] for d in self.domain if d in self.start and d in nll
        ]
        return sum(drops) / len(drops) if drops else None

    def forgetting(self, digest: str, nll: float) -> float | None:
        start = self.start.get(digest)
        return (nll - start) / start if start else None

    def over_budget(self, digest: str, nll: float | None) -> bool:
        """Whether ``nll`` (None: not scored) forgets more than the budget allows on ``digest``."""
        forgetting = None if nll is None else self.forgetting(digest, nll)
        return forgetting is not None and forgetting > self.budget

    def candidate(
        self,
        remedy: Remedy,
        alpha: float,
        replay: float,
        evals: list[NewEval],
        seconds: float,
        *,
        complete: bool = True,
    ) -> Candidate:
        nll = self.nll_of(evals)
        forgetting = {
            label: value
            for d, label in self.gated.items()
            if d in nll and (value := self.forgetting(d, nll[d])) is not None
        }
        gain = self.gain(nll)
        share = gain / self.raw_gain if gain is not None and self.raw_gain > 0 else None
        return Candidate(
            remedy=remedy,
            alpha=alpha,
            replay=replay,
            scores={self.labels.get(d, d): value for d, value in nll.items()},
            forgetting=forgetting,
            gain_share=share,
            seconds=seconds,
            within_budget=max(forgetting.values(), default=0.0) <= self.budget,
            # A floor of 0 is no floor: even an update that gained nothing on its split may be weakened.
            useful=self.min_gain_share == 0 or (share is not None and share >= self.min_gain_share),
            evals=evals,
            complete=complete,
        )


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
    # This update's own splits measure its gain, also when the same split is in the suite already (an
    # update trained again); they are not where it can forget.
    domain = [dataset.digest for dataset in search.eval_sets.values()]
    if search.parent is not None:
        recorded = search.registry.resolve(search.parent.ref).evals
        start = version_scores(recorded, search.parent.ref, setting)
    else:
        start = base_scores(search.registry, search.base, setting)
    judge = Judge(
        budget=budget,
        min_gain_share=spec.min_gain_share,
        setting=setting,
        start=start,
        gated={digest: label for digest, label in search.gated.items() if digest not in domain},
        domain=domain,
        labels={digest: s.label for digest, s in sets.items()},
    )
    judge.raw_gain = judge.gain(judge.nll_of(search.raw_evals)) or 0.0
    raw = judge.candidate("raw", 1.0, search.recipe.training.replay, search.raw_evals, 0.0)
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

    # 1. Strength, without retraining.
    from loraledger.trainer.scaling import NotScalable

    try:
        best = _search_strength(search, scorer, sets, judge, raw, outcome)
    except NotScalable as exc:
        search.stage(f"retention budget: {exc}; trying replay")
        best = None
    if best is not None and best.acceptable:
        outcome.chosen = best
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
        found = judge.candidate("replay", 1.0, share, evals, time.perf_counter() - started)
        found.folder, found.retrained = retrained.adapter_dir, retrained
        found.cpu_seconds = time.process_time() - cpu
        outcome.candidates.append(found)
        faults.point("retention-candidate")
        if found.acceptable:
            outcome.chosen = found
            return outcome
    return outcome


class _Session(Protocol):
    """What the strength search scores with (trainer/evaluate.py ``ScoringSession``)."""

    def use(self, adapter: Path) -> None: ...

    def score(self, label: str) -> EvalScore: ...


def _search_strength(
    search: Search,
    scorer: Scorer,
    sets: Mapping[str, ScoringSet],
    judge: Judge,
    raw: Candidate,
    outcome: RetentionOutcome,
) -> Candidate | None:
    """Set up the scoring session and the candidates' builder, then search (``strongest_within``)."""
    from loraledger.trainer.evaluate import ScoringSession
    from loraledger.trainer.scaling import scaled_adapter

    # The set-up (the parent's files, the sets' rows) is counted in the first probe's cost.
    setup = time.perf_counter(), time.process_time()
    parent_dir = None
    if search.parent is not None:
        parent_dir = search.registry.checkout(search.parent.ref, search.work_dir / "parent")
    session = ScoringSession(
        scorer.base_source(),
        {digest: search.registry.dataset_rows(digest) for digest in sets},
        scorer.spec,
        quantize=scorer.quantize,
        text_field=scorer.text_field,
        device=scorer.device,
    )

    def build(alpha: float) -> Path:
        return scaled_adapter(search.raw_dir, parent_dir, alpha, search.work_dir / f"alpha-{alpha:.6f}")

    return strongest_within(
        session,
        build,
        sets,
        judge,
        raw,
        outcome,
        steps=search.recipe.retention.bisection_steps,
        replay=search.recipe.training.replay,
        stage=search.stage,
        setup=setup,
    )


def strongest_within(
    session: _Session,
    build: Callable[[float], Path],
    sets: Mapping[str, ScoringSet],
    judge: Judge,
    raw: Candidate,
    outcome: RetentionOutcome,
    *,
    steps: int,
    replay: float,
    stage: Callable[[str], None] = lambda message: None,
    setup: tuple[float, float] | None = None,
) -> Candidate | None:
    """The largest strength within the budget, scored on every set (None: no alpha > 0 is within).
    Probes are scored on the sets at risk only; the one settled on is completed, and when another set
    is over the budget there, the search goes on below it (module doc). Every candidate is appended
    to ``outcome.candidates``."""
    budget = judge.budget
    raw_nll = judge.nll_of(raw.evals)
    # Worst first: a probe over the budget is usually over it on the set the raw update forgot most.
    at_risk = sorted(
        (d for d in judge.gated if judge.over_budget(d, raw_nll.get(d))),
        key=lambda d: -(judge.forgetting(d, raw_nll[d]) or 0.0),
    )
    probes: dict[float, Candidate] = {}

    def score(digests: list[str], *, stop_over_budget: bool) -> list[NewEval]:
        scores = {}
        for digest in digests:
            scores[digest] = session.score(digest)
            if stop_over_budget and judge.over_budget(digest, scores[digest].nll):
                break
        return evals_from_scores(scores, sets, judge.setting)

    def probe(alpha: float) -> float:
        """Excess of the worst forgetting over the budget, on the sets at risk."""
        nonlocal setup
        (started, cpu), setup = setup or (time.perf_counter(), time.process_time()), None
        stage(f"retention budget {budget:.1%}: probing strength {alpha:.4g}")
        folder = build(alpha)
        session.use(folder)
        evals = score(at_risk, stop_over_budget=True)
        found = judge.candidate(
            "strength", alpha, replay, evals, time.perf_counter() - started, complete=False
        )
        found.folder, found.cpu_seconds = folder, time.process_time() - cpu
        probes[alpha] = found
        outcome.candidates.append(found)
        faults.point("retention-candidate")
        return found.worst - budget

    high = (1.0, raw.worst - budget)
    while True:
        best = largest_within(probe, steps, low=(0.0, -budget), high=high)
        if best == 0:
            return None
        found = probes[best]
        assert found.folder is not None
        started, cpu = time.perf_counter(), time.process_time()
        stage(f"retention budget {budget:.1%}: scoring strength {best:.4g} on every set")
        session.use(found.folder)
        scored = {e.dataset.digest for e in found.evals}
        evals = found.evals + score([d for d in sets if d not in scored], stop_over_budget=False)
        complete = judge.candidate(
            "strength", best, replay, evals, found.seconds + time.perf_counter() - started
        )
        complete.folder = found.folder
        complete.cpu_seconds = found.cpu_seconds + time.process_time() - cpu
        outcome.candidates[outcome.candidates.index(found)] = complete
        if complete.within_budget:
            return complete
        # Over the budget on a set the raw update kept within it: that set is at risk too, and the
        # answer lies below this alpha.
        nll = judge.nll_of(evals)
        at_risk += [d for d in judge.gated if d not in at_risk and judge.over_budget(d, nll.get(d))]
        high = (best, complete.worst - budget)


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

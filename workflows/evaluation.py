"""``adapters eval``: score one version (or an adapter's base model) on held-out text, on its whole
suite, or on lm-evaluation-harness tasks, and record the scores in the registry.

Scores are kept per (version, dataset digest, setting): asking again for a pair already scored in the
same setting reads the recorded value and loads no model (``--rescore`` computes it again). The base
model's scores on the same sets are computed once per setting and cached too, so every line can say
how far the adapter moved. By default a version is scored the way it was trained (its quantization,
text field and eval spec), so that scores by hand line up with the train-time ones; ``--quantize``
scores it another way, recorded as another setting.
"""

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from loraledger.bases import recorded_base
from loraledger.registry import Registry
from loraledger.registry.forgetting import latest_scores
from loraledger.schemas.errors import InvalidInput
from loraledger.schemas.names import Ref
from loraledger.schemas.records import EvalResult, NewEval, VersionRecord
from loraledger.settings import Settings
from loraledger.suites import (
    Scorer,
    ScoringSet,
    base_scores,
    check_adapter_folder,
    suite_sets,
    trained_options,
    version_scores,
)


@dataclass(frozen=True)
class Target:
    """What is scored: a version, or (``NAME@base``) the base model of NAME's current version."""

    version: VersionRecord
    base_only: bool

    @property
    def title(self) -> str:
        if self.base_only:
            return f"{self.version.name}@base ({self.version.base.model_id})"
        return self.version.ref


@dataclass(frozen=True)
class Line:
    label: str
    digest: str
    nll: float | None
    perplexity: float | None
    base_nll: float | None
    scored_now: bool

    @property
    def vs_base(self) -> float | None:
        if self.nll is None or self.base_nll is None or self.base_nll == 0:
            return None
        return (self.nll - self.base_nll) / self.base_nll


@dataclass(frozen=True)
class EvalReport:
    target: Target
    lines: list[Line]
    benchmarks: list[NewEval]
    setting: str | None = None  # the scoring setting of every number in ``lines``


def resolve_target(registry: Registry, text: str) -> Target:
    ref = Ref.parse(text)
    if ref.alias == "base":
        return Target(registry.resolve(Ref(name=ref.name)), base_only=True)
    return Target(registry.resolve(ref), base_only=False)


def evaluate(
    settings: Settings,
    target_ref: str,
    files: list[Path],
    *,
    label: str | None = None,
    rescore: bool = False,
    quantize: str | None = None,
    stage: Callable[[str], None] = lambda message: None,
) -> EvalReport:
    """Score the target on FILEs, or with no files on every set of its adapter's suite, the way the
    version was trained (for NAME@base: the way NAME's current version was), or with ``quantize``."""
    from loraledger.registry.digests import canonical_records
    from loraledger.trainer.datafiles import read_records

    if label is not None and len(files) != 1:
        raise InvalidInput("--as names one data file: pass exactly one --data with it")
    registry = settings.open_registry()
    target = resolve_target(registry, target_ref)
    suite = suite_sets(registry, target.version.name)
    if files:
        sets: dict[str, ScoringSet] = {}
        for path in files:
            loaded = read_records(path)
            dataset = registry.store_dataset(
                canonical_records(loaded.records), format=loaded.format, source=loaded.source
            )
            known = suite.get(dataset.digest)
            name = label or (known.label if known else Path(loaded.source).stem or "eval")
            sets[dataset.digest] = ScoringSet(name, dataset, known.role if known else "extra")
    else:
        sets = suite
        if not sets:
            raise InvalidInput(
                f"{target.version.name} has no eval suite yet: pass --data FILE, or add sets with "
                f"`adapters suite add {target.version.name} FILE`"
            )
    options = trained_options(target.version)
    if quantize is not None:
        options["quantize"] = quantize
    scorer = Scorer(
        registry,
        target.version.base,
        lambda: recorded_base(settings, target.version.base),
        stage=stage,
        **options,
    )
    scored: set[str] = set()  # sets the target itself was scored on just now (not its base)
    if not target.base_only:
        scored = {e.dataset.digest for e in scorer.ensure_version(target.version, sets, rescore=rescore)}
    base_scored = {e.dataset.digest for e in scorer.ensure_base(sets, rescore=rescore and target.base_only)}
    if target.base_only:
        scored = base_scored

    setting = scorer.setting
    base = base_scores(registry, target.version.base, setting)
    if target.base_only:
        mine, perplexities = base, _perplexities(registry.base_evals(target.version.base), None, setting)
    else:
        results = registry.resolve(target.version.ref).evals
        mine = version_scores(results, target.version.ref, setting)
        perplexities = _perplexities(results, target.version.ref, setting)
    lines = [
        Line(
            label=eval_set.label,
            digest=digest,
            nll=mine.get(digest),
            perplexity=perplexities.get(digest),
            base_nll=None if target.base_only else base.get(digest),
            scored_now=digest in scored,
        )
        for digest, eval_set in sets.items()
    ]
    return EvalReport(target=target, lines=lines, benchmarks=[], setting=setting)


def evaluate_lm_eval(
    settings: Settings,
    target_ref: str,
    tasks: list[str],
    *,
    limit: int | None = None,
    stage: Callable[[str], None] = lambda message: None,
) -> EvalReport:
    """Run lm-evaluation-harness tasks on the target and record every metric as an eval result."""
    from loraledger.lmeval import SETTING, require_lm_eval, results_to_evals, run_tasks

    require_lm_eval()  # before anything slow: a missing extra is a one-line answer
    if not tasks:
        raise InvalidInput("--lm-eval takes a comma-separated list of task names, e.g. hellaswag,arc_easy")
    registry = settings.open_registry()
    target = resolve_target(registry, target_ref)
    source = recorded_base(settings, target.version.base)
    stage(f"running lm-evaluation-harness on {target.title}: {', '.join(tasks)}")
    with tempfile.TemporaryDirectory(prefix="loraledger-lm-eval-") as scratch:
        adapter = None
        if not target.base_only:
            adapter = registry.checkout(target.version.ref, Path(scratch) / "adapter")
            check_adapter_folder(target.version, adapter)
        evals = results_to_evals(run_tasks(source, adapter, tasks, limit=limit), limit=limit)
    if target.base_only:
        registry.record_base_evals(target.version.base, evals)
    else:
        registry.record_evals(target.version.ref, evals)
    return EvalReport(target=target, lines=[], benchmarks=evals, setting=SETTING)


def _perplexities(results: list[EvalResult], ref: str | None, setting: str) -> dict[str, float]:
    return latest_scores(results, "perplexity", setting=setting).get(ref, {})

"""One continual update, end to end: the workflow behind ``adapters train``.

    resolve parent, base, recipe -> read data -> draw replay rows -> load base -> train -> store data
    -> score on the eval suite -> gate -> register (current moves only if the gate passes) -> finish

``_update`` calls one function per phase, in that order; each takes what earlier phases returned.

This is the one place that combines the trainer and the registry. Nothing reaches the registry until
the adapter is saved, its artifact stored and its digest computed, so a crash at any step before
registration leaves no version behind (at most unreferenced blobs, which `adapters gc` lists).
"""

import json
import logging
import random
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loraledger import faults
from loraledger.fingerprints import fingerprint
from loraledger.registry import Registry
from loraledger.registry.digests import (
    bytes_digest,
    canonical_json,
    canonical_lines_digest,
    canonical_records,
)
from loraledger.schemas.errors import Conflict, InvalidInput
from loraledger.schemas.jobs import BaseSource, TrainJob, TrainOutcome
from loraledger.schemas.names import Ref, check_name
from loraledger.schemas.records import (
    BaseModelRecord,
    NewDataset,
    NewDatasetUse,
    NewEval,
    NewVersion,
    VersionRecord,
)
from loraledger.schemas.specs import Recipe
from loraledger.settings import Settings
from loraledger.suites import Regression, gate, score_update, update_label
from loraledger.trainer.datafiles import LoadedData, read_records

if TYPE_CHECKING:
    from loraledger.retention import RetentionOutcome, Retrained
    from loraledger.runlog import RunLog

log = logging.getLogger("loraledger.update")


@dataclass
class TrainRequest:
    name: str
    data: list[Path]
    recipe: Recipe
    base: str | None = None
    revision: str | None = None
    parent: str | None = None
    fresh: bool = False
    eval_files: list[Path] = field(default_factory=list)
    # Data to replay besides the lineage's (e.g. general text like the base's); needs recipe replay > 0.
    replay_files: list[Path] = field(default_factory=list)
    run_eval: bool = True
    force: bool = False
    resume: bool = False
    num_processes: int = 1
    note: str | None = None
    allow_pickle: bool = False
    trust_remote_code: bool = False
    lora_overrides: set[str] = field(default_factory=set)


@dataclass
class TrainResult:
    version: VersionRecord
    outcome: TrainOutcome
    promoted: bool
    regressions: list[Regression]
    scores: dict[str, float]
    warnings: list[str]
    run_dir: Path
    # Whether the forgetting gate looked at this version (not with --no-eval, nor for a first version).
    gated: bool = False
    eval_setting: str | None = None  # the scoring setting of ``scores``
    # With a retention budget: the search (``version`` is then the chosen candidate when one was).
    retention: "RetentionOutcome | None" = None


@dataclass(frozen=True)
class Canonical:
    """A dataset read from files, in canonical form: computed once, used for its digest, its stored
    copy, the run folder's key, and what is trained on.

    Training on the canonical records (not the file's rows) makes the digest mean what it says: files
    that digest alike (other row order, key order, line endings) train the same adapter, and the copy
    the registry keeps reproduces the version exactly."""

    loaded: LoadedData
    lines: list[str]
    digest: str

    @classmethod
    def of(cls, loaded: LoadedData) -> "Canonical":
        lines = canonical_records(loaded.records)
        return cls(loaded, lines, canonical_lines_digest(lines))

    @property
    def records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.lines]


@dataclass
class Hooks:
    """How the caller wants to hear about progress (the CLI draws bars; tests pass nothing)."""

    warn: Callable[[str], None] = lambda message: None
    stage: Callable[[str], None] = lambda message: None
    build_progress: Any = None
    train_progress: Any = None


def run_training(settings: Settings, request: TrainRequest, hooks: Hooks | None = None) -> TrainResult:
    """Run one update, logging its stages and the libraries' messages to the run's train.log."""
    from loraledger.runlog import RunLog

    with RunLog() as run_log:
        return _update(settings, request, run_log.wrap(hooks or Hooks()), run_log)


def _update(settings: Settings, request: TrainRequest, hooks: Hooks, run_log: "RunLog") -> TrainResult:
    """The update as a sequence of phases; each returns what the later ones need. Nothing is written
    to the registry's tables before ``_register``."""
    check_name(request.name, "adapter name")
    if request.recipe.retention.max_forgetting is not None and not (request.run_eval and request.eval_files):
        raise InvalidInput(
            "a retention budget (--max-forgetting) needs --eval: the gain it keeps is measured there"
        )
    registry = settings.open_registry()
    registry.check_writable()  # a read-only registry is said now, not after the whole run
    run = _Run(settings, request, hooks, registry)
    plan = _resolve(run)
    data = _read_data(run, plan)
    replay = _replay_rows(run, plan, data)
    _warn_retrained(run, plan, data)
    source, base = _load_base(run, plan)
    run_dir, outcome, job = _train_adapter(run, plan, data, replay, source, base, run_log)
    uses, eval_sets = _store_data(run, data, replay, outcome)
    evals = _score(run, plan, source, base, outcome, eval_sets)
    regressions = _gate(run, plan, evals)
    retention = _meet_budget(run, plan, data, source, base, outcome, job, run_dir, eval_sets, evals)
    version, raw_new, promoted = _register(
        run, plan, base, outcome, replay, uses, evals.results, regressions, retention
    )
    _finish(run, version, eval_sets, run_dir)
    scores = evals.scores
    if retention is not None and retention.searched:  # register the chosen candidate (retention.py)
        from loraledger.retention import register_outcome

        retention.raw_ref = version.ref
        version = register_outcome(run.registry, retention, raw_new, version, plan.current_at_start)
        # The chosen one is stored now; the other candidates' folders are kept only when nothing met
        # the budget (register_outcome raised), for inspection.
        shutil.rmtree(run_dir / "candidates", ignore_errors=True)
        promoted = version.is_current
        assert retention.chosen is not None
        scores, regressions = retention.chosen.scores, []  # the raw update's; the chosen one is within
    return TrainResult(
        version=version,
        outcome=outcome,
        promoted=promoted,
        regressions=regressions,
        scores=scores,
        warnings=run.warnings,
        run_dir=run_dir,
        gated=request.run_eval and plan.parent is not None,
        eval_setting=evals.results[0].setting if evals.results else None,
        retention=retention,
    )


@dataclass
class _Run:
    """What every phase of one update shares: its inputs, the registry, and the warnings so far."""

    settings: Settings
    request: TrainRequest
    hooks: Hooks
    registry: Registry
    warnings: list[str] = field(default_factory=list)

    def warn(self, message: str) -> None:
        self.warnings.append(message)
        self.hooks.warn(message)


@dataclass(frozen=True)
class _Plan:
    parent: VersionRecord | None
    base_id: str
    recipe: Recipe
    # Where `current` stood at the start decides, at registration, whether it may move.
    current_at_start: int | None


@dataclass(frozen=True)
class _Data:
    train: list[Canonical]
    eval: list[Canonical]
    replay_files: list[Canonical]  # --replay-data: joins the lineage's pool of replayable rows


@dataclass(frozen=True)
class _Replay:
    sources: list[tuple[NewDataset, list[dict[str, Any]]]]  # (dataset, the rows drawn from it)
    records: list[dict[str, Any]]
    # The replayed rows are part of what is trained on: the run folder's key covers them too.
    canonical: Canonical


@dataclass(frozen=True)
class _Scores:
    results: list[NewEval] = field(default_factory=list)
    gated: dict[str, str] = field(default_factory=dict)  # digest -> label: the sets the gate compares
    scores: dict[str, float] = field(default_factory=dict)  # label -> NLL, for the summary


def _resolve(run: _Run) -> _Plan:
    """1. Parent, base and recipe."""
    request, registry = run.request, run.registry
    current_at_start = registry.current_number(request.name)
    parent = _parent(registry, request)
    # --fresh starts a new LoRA on the adapter's current base unless --base names another.
    latest = parent or (_parent(registry, replace(request, fresh=False)) if request.fresh else None)
    base_id = request.base or (latest.base.model_id if latest else None)
    if base_id is None:
        raise InvalidInput(f"{request.name} is a new adapter: pass --base MODEL (e.g. --base builtin:tiny)")
    if (
        parent
        and request.base
        and not request.fresh
        and not _same_base_id(request.base, parent.base.model_id)
    ):
        raise Conflict(
            f"{parent.ref} was trained on {parent.base.model_id}, not {request.base}: "
            "drop --base to continue it, or pass --fresh to start over on another base"
        )
    return _Plan(parent, base_id, _recipe_for(request, parent), current_at_start)


def _read_data(run: _Run, plan: _Plan) -> _Data:
    """2. Data: read and put in canonical form (its digest and stored copy come from that form)."""
    text_field = plan.recipe.training.text_field

    def read(paths: list[Path]) -> list[Canonical]:
        return [Canonical.of(read_records(path, text_field=text_field)) for path in paths]

    request = run.request
    return _Data(read(request.data), read(request.eval_files), read(request.replay_files))


def _replay_rows(run: _Run, plan: _Plan, data: _Data) -> _Replay:
    """3. Replay: rows drawn from the lineage's training data (and --replay-data) to mix in."""
    train_rows = sum(len(item.lines) for item in data.train)
    sources = _replay(run.registry, plan.parent, plan.recipe, train_rows, run.warn, data.replay_files)
    records = [row for _, rows in sources for row in rows]
    canonical = Canonical.of(LoadedData(records=records, format="replay", source="replay", files=0))
    return _Replay(sources, records, canonical)


def _warn_retrained(run: _Run, plan: _Plan, data: _Data) -> None:
    """Data this lineage already trained on is allowed (a second epoch, say) but worth a word."""
    parent = plan.parent
    if not parent:
        return
    seen = run.registry.already_trained(parent, [item.digest for item in data.train])
    for item in data.train:
        if item.digest in seen:
            run.warn(
                f"{item.loaded.source} ({item.digest[:19]}) was already trained on by "
                f"{seen[item.digest]}, in the lineage of {parent.ref} that this update continues"
            )


def _load_base(run: _Run, plan: _Plan) -> tuple[BaseSource, BaseModelRecord]:
    """4. Base model: resolve (building a built-in on first use) and fingerprint."""
    from loraledger.trainer.models import resolve_base

    settings, request, parent = run.settings, run.request, plan.parent
    run.hooks.stage(f"loading base {plan.base_id}")
    source = resolve_base(
        plan.base_id,
        cache_dir=settings.cache_dir,
        revision=request.revision,
        allow_pickle=request.allow_pickle,
        progress=run.hooks.build_progress,
    )
    base = fingerprint(source, settings.cache_dir)
    if parent and not request.fresh and not parent.base.same_model(base):
        raise Conflict(
            f"the base {plan.base_id} no longer matches the one {parent.ref} was trained on "
            f"(weights {base.weights_digest or base.revision} vs "
            f"{parent.base.weights_digest or parent.base.revision})"
        )
    return source, base


def _train_adapter(
    run: _Run,
    plan: _Plan,
    data: _Data,
    replay: _Replay,
    source: BaseSource,
    base: BaseModelRecord,
    run_log: "RunLog",
) -> tuple[Path, TrainOutcome, TrainJob]:
    """5. Train in a run folder that survives crashes (checkpoints for --resume, the log)."""
    request, parent, recipe = run.request, plan.parent, plan.recipe
    run_dir = _run_dir(
        run.settings, request, parent, base.fingerprint, [*data.train, replay.canonical], recipe, run.warn
    )
    run_log.open(run_dir / "train.log")
    train_records = [item.records for item in data.train]
    with tempfile.TemporaryDirectory(prefix="loraledger-parent-") as scratch:
        parent_dir = (
            run.registry.checkout(parent.ref, Path(scratch) / "parent", allow_pickle=request.allow_pickle)
            if parent
            else None
        )
        job = TrainJob(
            base=source,
            lora=recipe.lora,
            training=recipe.training,
            records=[row for rows in train_records for row in rows] + replay.records,
            source_rows=[len(rows) for rows in train_records] + [len(rows) for _, rows in replay.sources],
            replay_rows=len(replay.records),
            parent_adapter=parent_dir,
            output_dir=run_dir / "adapter",
            checkpoint_dir=run_dir / "checkpoints",
            resume=request.resume,
            allow_pickle=request.allow_pickle,
            trust_remote_code=request.trust_remote_code,
        )
        run.hooks.stage(f"training {request.name} ({'continuing ' + parent.ref if parent else 'fresh'})")
        outcome = _train(job, request.num_processes, run_dir, _fault_point(run.hooks.train_progress))
    faults.point("trained")
    return run_dir, outcome, job


def _store_data(
    run: _Run, data: _Data, replay: _Replay, outcome: TrainOutcome
) -> tuple[list[NewDatasetUse], dict[str, NewDataset]]:
    """6. Store the data it saw (scoring reads the stored copies), with the tokens of each source as
    the trainer counted them under this base's tokenizer. Returns the uses and the eval splits by label."""
    registry = run.registry
    counted = outcome.data.source_tokens  # train files first, then the replay sources (source_rows)
    train_count = len(data.train)
    uses = [
        NewDatasetUse(
            dataset=_store(registry, item, tokens=tokens), role="train", rows=len(item.lines), tokens=tokens
        )
        for item, tokens in zip(data.train, counted[:train_count], strict=True)
    ]
    uses += [
        NewDatasetUse(
            dataset=dataset, role="replay", rows=len(rows), tokens=tokens, label=f"replay {len(rows)} rows"
        )
        for (dataset, rows), tokens in zip(replay.sources, counted[train_count:], strict=True)
    ]
    eval_sets: dict[str, NewDataset] = {}
    for item in data.eval:
        dataset = _store(registry, item)
        if all(dataset.digest != known.digest for known in eval_sets.values()):  # the same split twice
            eval_sets[update_label(registry, run.request.name, dataset, taken=eval_sets)] = dataset
    uses += [
        NewDatasetUse(dataset=dataset, role="eval", rows=dataset.rows, label=label)
        for label, dataset in eval_sets.items()
    ]
    return uses, eval_sets


def _score(
    run: _Run,
    plan: _Plan,
    source: BaseSource,
    base: BaseModelRecord,
    outcome: TrainOutcome,
    eval_sets: dict[str, NewDataset],
) -> _Scores:
    """7. Score the new adapter on the suite (and this update's eval splits); not with --no-eval."""
    if not run.request.run_eval:
        return _Scores()
    run.hooks.stage("evaluating on the eval suite")
    results, gated = score_update(
        run.registry,
        run.request.name,
        plan.parent,
        source,
        base,
        outcome.adapter_dir,
        eval_sets,
        plan.recipe,
        run.hooks.stage,
    )
    scores = {
        result.label or result.dataset.digest: result.value for result in results if result.metric == "nll"
    }
    return _Scores(results, gated, scores)


def _gate(run: _Run, plan: _Plan, evals: _Scores) -> list[Regression]:
    """8. The forgetting gate: the sets on which the new version got worse than its parent by more
    than the adapter's threshold (none for a first version, or when nothing was scored)."""
    if not run.request.run_eval or not plan.parent:
        return []
    threshold = run.registry.max_regression(run.request.name)
    return gate(run.registry, plan.parent, evals.results, evals.gated, threshold)


def _meet_budget(
    run: _Run,
    plan: _Plan,
    data: _Data,
    source: BaseSource,
    base: BaseModelRecord,
    outcome: TrainOutcome,
    job: TrainJob,
    run_dir: Path,
    eval_sets: dict[str, NewDataset],
    evals: _Scores,
) -> "RetentionOutcome | None":
    """8b. The retention budget (workflows/retention.py), when one is set: search the update's strength,
    then replay, for a candidate within the budget. Nothing is registered here."""
    request, registry, parent, recipe = run.request, run.registry, plan.parent, plan.recipe
    if recipe.retention.max_forgetting is None:
        return None
    from loraledger.retention import Search, meet_budget

    train_records = [item.records for item in data.train]
    return meet_budget(
        Search(
            registry,
            request.name,
            parent,
            source,
            base,
            recipe,
            outcome.adapter_dir,
            evals.results,
            eval_sets,
            evals.gated,
            outcome.seconds,
            run_dir / "candidates",
            _replay_retrainer(
                registry, request, parent, recipe, job, run_dir, train_records, data.replay_files, run.warn
            ),
            run.hooks.stage,
        )
    )


def _register(
    run: _Run,
    plan: _Plan,
    base: BaseModelRecord,
    outcome: TrainOutcome,
    replay: _Replay,
    uses: list[NewDatasetUse],
    evals: list[NewEval],
    regressions: list[Regression],
    retention: "RetentionOutcome | None",
) -> tuple[VersionRecord, NewVersion, bool]:
    """9. Store the adapter, then register it atomically with everything above; returns the version
    and whether it became current. Storing it last keeps the time its blobs spend unreferenced short
    (see `adapters gc --min-age`)."""
    request, registry, parent, recipe = run.request, run.registry, plan.parent, plan.recipe
    promote = not regressions or request.force
    if retention is not None:
        # With a budget, the budget (not the gate's threshold) decides about the raw update: held back
        # when the search found a weaker candidate to register after it.
        promote = not retention.searched
    artifact = registry.put_artifact(outcome.adapter_dir)
    faults.point("before-register")
    version = registry.register(
        raw_new := NewVersion(
            name=request.name,
            kind="train",
            parent=parent.ref if parent else None,
            base=base,
            lora=outcome.lora.model_dump(),
            training=recipe.training.model_dump()
            | {
                "replay_rows": len(replay.records),
                "padding": outcome.padding,
                "precision_used": outcome.precision,
                "resumed_from": outcome.resumed_from,
                "eval": recipe.eval.model_dump(),
            }
            | ({"retention": retention.trace()} if retention else {}),
            seed=recipe.training.seed,
            libraries=outcome.libraries,
            train_tokens=outcome.data.tokens,
            final_loss=outcome.final_loss,
            artifact_digest=artifact,
            note=request.note,
            datasets=uses,
            evals=evals,
        ),
        promote=promote,
        reason="forced past the forgetting gate" if regressions and request.force else "trained",
        only_if_current=(plan.current_at_start,),
    )
    if promote and not version.is_current:
        promote = False
        now = registry.current_number(request.name)
        run.warn(
            f"{request.name}@current moved to {now} while {version.ref} trained: {version.ref} is registered "
            f"but not made current (`adapters promote {version.ref}` if it should be)"
        )
    log.info("registered %s (%s)", version.ref, "current" if promote else "current not moved")
    return version, raw_new, promote


def _finish(run: _Run, version: VersionRecord, eval_sets: dict[str, NewDataset], run_dir: Path) -> None:
    """10. The eval splits join the suite (even with --no-eval: `adapters eval REF` scores them later);
    the checkpoints of a finished run go."""
    for label, dataset in eval_sets.items():
        run.registry.add_to_suite(
            run.request.name, dataset, label=label, role="update", version=version.number
        )
    shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)


def _parent(registry: Registry, request: TrainRequest) -> VersionRecord | None:
    if request.parent and request.fresh:
        raise InvalidInput("--from continues a version and --fresh starts a new adapter: pass one of them")
    if request.parent:
        parent = registry.resolve(request.parent)
        return parent
    if request.fresh:
        return None
    if not registry.has_versions(request.name):  # none yet (a suite may exist before version 1)
        return None
    return registry.resolve(Ref(name=request.name))


def _same_base_id(asked: str, recorded: str) -> bool:
    local = Path(asked).expanduser()
    return asked == recorded or (local.exists() and str(local.resolve()) == recorded)


def _recipe_for(request: TrainRequest, parent: VersionRecord | None) -> Recipe:
    """A continued adapter keeps its parent's LoRA shape (rank, alpha, target modules): asking for
    another is an error; dropout may change."""
    if parent is None or request.fresh or not parent.lora:
        return request.recipe
    inherited = {k: v for k, v in parent.lora.items() if k not in request.lora_overrides}
    lora = request.recipe.lora.model_copy(update=inherited)
    asked = request.recipe.lora.model_dump()
    changed = [
        key
        for key in ("r", "alpha", "target_modules")
        if key in request.lora_overrides and _sorted(asked[key]) != _sorted(parent.lora.get(key))
    ]
    if changed:
        raise Conflict(
            f"{parent.ref} has {', '.join(f'{k}={parent.lora.get(k)}' for k in changed)}; a continued "
            "adapter keeps its shape: drop the flag, or pass --fresh to start a new adapter"
        )
    return request.recipe.model_copy(update={"lora": lora})


def _sorted(value: Any) -> Any:
    return sorted(value) if isinstance(value, list) else value


def _store(registry: Registry, data: Canonical, *, tokens: int | None = None) -> NewDataset:
    return registry.store_dataset(
        data.lines, format=data.loaded.format, source=data.loaded.source, tokens=tokens
    )


def _replay(
    registry: Registry,
    parent: VersionRecord | None,
    recipe: Recipe,
    train_rows: int,
    warn: Callable[[str], None],
    extra: Sequence[Canonical] = (),
) -> list[tuple[NewDataset, list[dict[str, Any]]]]:
    """Rows sampled from the training data of the lineage, so that they make up ``replay`` of the mix:
    (dataset, the rows drawn from it) per source.

    ``extra`` (--replay-data) joins the pool: general text, say, that the adapter must keep modelling.
    What an ancestor replayed from such files stays in the pool of its descendants."""
    share = recipe.training.replay
    if share <= 0:
        if extra:
            warn("--replay-data is drawn from only with --replay SHARE (e.g. --replay 0.3): ignored")
        return []
    datasets: dict[str, NewDataset] = {}
    rows_of: dict[str, list[dict[str, Any]]] = {}
    if parent is not None:
        for use in registry.lineage_datasets(parent) + registry.lineage_datasets(parent, role="replay"):
            if use.dataset.digest not in datasets:
                datasets[use.dataset.digest] = use.dataset.as_new()
                rows_of[use.dataset.digest] = registry.dataset_rows(use.dataset.digest)
    for data in extra:
        dataset = _store(registry, data)
        datasets.setdefault(dataset.digest, dataset)
        rows_of.setdefault(dataset.digest, data.records)
    if not datasets:
        warn("--replay has no effect on a first version without --replay-data: there is no earlier data")
        return []
    pool = [(digest, row) for digest, rows in rows_of.items() for row in rows]
    wanted = round(share / (1 - share) * train_rows)
    if wanted > len(pool):
        warn(f"replay wants {wanted} rows, the lineage holds {len(pool)}: replaying all of them")
    chosen = random.Random(recipe.training.seed).sample(pool, min(wanted, len(pool)))
    drawn: dict[str, list[dict[str, Any]]] = {}
    for digest, row in chosen:
        drawn.setdefault(digest, []).append(row)
    return [(datasets[digest], rows) for digest, rows in drawn.items()]


def _run_dir(
    settings: Settings,
    request: TrainRequest,
    parent: VersionRecord | None,
    base_fingerprint: str,
    train_data: list[Canonical],
    recipe: Recipe,
    warn: Callable[[str], None],
) -> Path:
    """The same request maps to the same run folder, which is how --resume finds its checkpoints."""
    key = bytes_digest(
        canonical_json(
            {
                "name": request.name,
                "parent": parent.ref if parent else None,
                "base": base_fingerprint,
                "data": [data.digest for data in train_data],
                "recipe": recipe.model_dump(mode="json"),
            }
        ).encode()
    ).split(":")[1][:16]
    run_dir = settings.runs_dir / f"{request.name}-{key}"
    checkpoints = run_dir / "checkpoints"
    if checkpoints.exists() and not request.resume:
        shutil.rmtree(checkpoints)  # an earlier attempt's checkpoints; without --resume we start over
    if request.resume and not any(checkpoints.glob("checkpoint-*")):
        warn(f"--resume: no checkpoint of this run in {run_dir}: starting from the beginning")
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def _fault_point(progress: Any) -> Any:
    """The training progress callback, with the ``train-step`` fault point (cli/faults.py) in front."""

    def report(*args: Any) -> None:
        faults.point("train-step")
        if progress is not None:
            progress(*args)

    return report


def _train(job: TrainJob, num_processes: int, run_dir: Path, progress: Any) -> TrainOutcome:
    (run_dir / "job.json").write_text(job.model_dump_json(indent=1, exclude={"records"}))
    if num_processes > 1:
        from loraledger.trainer.launch import launch

        return launch(job, num_processes, run_dir, progress)
    from loraledger.trainer.recipe import train

    return train(job, progress=progress)


def _replay_retrainer(
    registry: Registry,
    request: TrainRequest,
    parent: VersionRecord | None,
    recipe: Recipe,
    job: TrainJob,
    run_dir: Path,
    train_records: list[list[dict[str, Any]]],
    replay_data: list[Canonical],
    warn: Callable[[str], None],
) -> "Callable[[float], Retrained | None]":
    """The retention search's replay remedy: the same job again with ``share`` of replayed rows."""
    from loraledger.retention import Retrained

    def retrain(share: float) -> Retrained | None:
        shared = recipe.model_copy(update={"training": recipe.training.model_copy(update={"replay": share})})
        sources = _replay(registry, parent, shared, sum(map(len, train_records)), warn, replay_data)
        replayed = [row for _, rows in sources for row in rows]
        if not replayed:
            return None  # a first version without --replay-data: nothing to replay
        folder = run_dir / "candidates" / f"replay-{share:g}"
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="loraledger-parent-") as scratch:
            parent_dir = registry.checkout(parent.ref, Path(scratch) / "parent") if parent else None
            again = job.model_copy(
                update={
                    "training": shared.training,
                    "records": [row for rows in train_records for row in rows] + replayed,
                    "source_rows": [len(rows) for rows in train_records] + [len(rows) for _, rows in sources],
                    "replay_rows": len(replayed),
                    "parent_adapter": parent_dir,
                    "output_dir": folder / "adapter",
                    "checkpoint_dir": folder / "checkpoints",
                    "resume": False,
                }
            )
            outcome = _train(again, request.num_processes, folder, _fault_point(None))
        tokens = outcome.data.source_tokens[len(train_records) :]
        uses = [
            NewDatasetUse(
                dataset=dataset, role="replay", rows=len(rows), tokens=count, label=f"replay {len(rows)} rows"
            )
            for (dataset, rows), count in zip(sources, tokens, strict=True)
        ]
        return Retrained(outcome.adapter_dir, outcome.seconds, outcome.final_loss, outcome.data.tokens, uses)

    return retrain

"""One continual update, end to end: the workflow behind ``adapters train``.

    resolve parent and base -> read and digest data -> add replay rows -> train -> store the adapter
    -> score it on the adapter's eval suite -> gate -> register (current moves only if the gate passes)

This is the one place that combines the trainer and the registry. Nothing reaches the registry until
the adapter is saved, its artifact stored and its digest computed, so a crash at any step before
registration leaves no version behind (at most unreferenced blobs, which `adapters gc` lists).
"""

import logging
import random
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loraledger.cli.fingerprints import fingerprint
from loraledger.cli.settings import Settings
from loraledger.cli.suites import Regression, gate, score_update
from loraledger.registry import Registry
from loraledger.registry.digests import bytes_digest, canonical_json, canonical_records
from loraledger.schemas.errors import Conflict, InvalidInput
from loraledger.schemas.jobs import TrainJob, TrainOutcome
from loraledger.schemas.names import Ref, check_name
from loraledger.schemas.records import NewDataset, NewDatasetUse, NewEval, NewVersion, VersionRecord
from loraledger.schemas.specs import Recipe
from loraledger.trainer.datafiles import LoadedData, read_records

log = logging.getLogger("loraledger.update")


@dataclass
class UpdateRequest:
    name: str
    data: list[Path]
    recipe: Recipe
    base: str | None = None
    revision: str | None = None
    parent: str | None = None
    fresh: bool = False
    eval_files: list[Path] = field(default_factory=list)
    run_eval: bool = True
    force: bool = False
    resume: bool = False
    num_processes: int = 1
    note: str | None = None
    allow_pickle: bool = False
    trust_remote_code: bool = False
    lora_overrides: set[str] = field(default_factory=set)


@dataclass
class UpdateResult:
    version: VersionRecord
    outcome: TrainOutcome
    promoted: bool
    regressions: list[Regression]
    scores: dict[str, float]
    warnings: list[str]
    run_dir: Path


@dataclass
class Hooks:
    """How the caller wants to hear about progress (the CLI draws bars; tests pass nothing)."""

    warn: Callable[[str], None] = lambda message: None
    stage: Callable[[str], None] = lambda message: None
    build_progress: Any = None
    train_progress: Any = None


def run_update(settings: Settings, request: UpdateRequest, hooks: Hooks | None = None) -> UpdateResult:
    hooks = hooks or Hooks()
    warnings: list[str] = []

    def warn(message: str) -> None:
        warnings.append(message)
        hooks.warn(message)

    check_name(request.name, "adapter name")
    registry = settings.open_registry()

    # 1. Parent and base.
    parent = _parent(registry, request)
    base_id = request.base or (parent.base.model_id if parent else None)
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
    recipe = _recipe_for(request, parent)

    # 2. Data: read, digest, keep a canonical copy; replay rows from the lineage.
    train_data = [read_records(path, text_field=recipe.training.text_field) for path in request.data]
    eval_data = [read_records(path, text_field=recipe.training.text_field) for path in request.eval_files]
    train_records = [record for loaded in train_data for record in loaded.records]
    replay_records, replay_sources = _replay(registry, parent, recipe, len(train_records), warn)
    if parent:
        seen = {use.dataset.digest for use in registry.lineage_datasets(parent)}
        for loaded in train_data:
            digest = _digest(loaded)
            if digest in seen:
                warn(f"{loaded.source} ({digest[:19]}) was already trained on in {request.name}'s lineage")

    # 3. Base model: resolve (building a built-in on first use) and fingerprint.
    hooks.stage(f"loading base {base_id}")
    from loraledger.trainer.models import resolve_base

    source = resolve_base(
        base_id,
        cache_dir=settings.cache_dir,
        revision=request.revision,
        allow_pickle=request.allow_pickle,
        progress=hooks.build_progress,
    )
    base = fingerprint(source, settings.cache_dir)
    if parent and not request.fresh and not parent.base.same_model(base):
        raise Conflict(
            f"the base {base_id} no longer matches the one {parent.ref} was trained on "
            f"(weights {base.weights_digest or base.revision} vs "
            f"{parent.base.weights_digest or parent.base.revision})"
        )

    # 4. Train in a run folder that survives crashes (checkpoints for --resume, the log).
    run_dir = _run_dir(settings, request, parent, base.fingerprint, train_data, recipe)
    with tempfile.TemporaryDirectory(prefix="loraledger-parent-") as scratch:
        parent_dir = registry.checkout(parent.ref, Path(scratch) / "parent") if parent else None
        job = TrainJob(
            base=source,
            lora=recipe.lora,
            training=recipe.training,
            records=train_records + replay_records,
            replay_rows=len(replay_records),
            parent_adapter=parent_dir,
            output_dir=run_dir / "adapter",
            checkpoint_dir=run_dir / "checkpoints",
            resume=request.resume,
            allow_pickle=request.allow_pickle,
            trust_remote_code=request.trust_remote_code,
        )
        hooks.stage(f"training {request.name} ({'continuing ' + parent.ref if parent else 'fresh'})")
        outcome = _train(job, request.num_processes, run_dir, hooks.train_progress)

    # 5. Store the adapter and the data it saw.
    artifact = registry.put_artifact(outcome.adapter_dir)
    uses = [
        NewDatasetUse(dataset=_store(registry, loaded), role="train", rows=len(loaded.records))
        for loaded in train_data
    ]
    uses += [
        NewDatasetUse(dataset=dataset, role="replay", rows=rows, label=label)
        for dataset, rows, label in replay_sources
    ]
    eval_sets = {
        f"{request.name} update eval ({loaded.source})": _store(registry, loaded) for loaded in eval_data
    }
    uses += [
        NewDatasetUse(dataset=dataset, role="eval", rows=dataset.rows, label=label)
        for label, dataset in eval_sets.items()
    ]

    # 6. Score on the suite and apply the gate.
    scores: dict[str, float] = {}
    regressions: list[Regression] = []
    evals: list[NewEval] = []
    if request.run_eval:
        hooks.stage("evaluating on the eval suite")
        evals, suite_labels = score_update(
            registry, request.name, parent, source, outcome.adapter_dir, eval_sets, recipe, settings
        )
        scores = {
            result.label or result.dataset.digest: result.value for result in evals if result.metric == "nll"
        }
        threshold = registry.max_regression(request.name)
        regressions = gate(registry, parent, evals, suite_labels, threshold) if parent else []
    promote = not regressions or request.force

    # 7. Register, atomically, with everything above.
    version = registry.register(
        NewVersion(
            name=request.name,
            kind="train",
            parent=parent.ref if parent else None,
            base=base,
            lora=outcome.lora.model_dump(),
            training=recipe.training.model_dump() | {"replay_rows": len(replay_records)},
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
    )
    if request.run_eval:
        for label, dataset in eval_sets.items():
            registry.add_to_suite(request.name, dataset, label=label, role="update", version=version.number)
    shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
    return UpdateResult(
        version=version,
        outcome=outcome,
        promoted=promote,
        regressions=regressions,
        scores=scores,
        warnings=warnings,
        run_dir=run_dir,
    )


def _parent(registry: Registry, request: UpdateRequest) -> VersionRecord | None:
    if request.parent:
        parent = registry.resolve(request.parent)
        return parent
    if request.fresh:
        return None
    if not registry.exists(request.name) or not registry.versions(request.name):
        return None
    return registry.resolve(Ref(name=request.name))


def _same_base_id(asked: str, recorded: str) -> bool:
    local = Path(asked).expanduser()
    return asked == recorded or (local.exists() and str(local.resolve()) == recorded)


def _recipe_for(request: UpdateRequest, parent: VersionRecord | None) -> Recipe:
    """A continued adapter keeps its parent's LoRA shape unless the user asked for another one."""
    if parent is None or request.fresh or not parent.lora:
        return request.recipe
    inherited = {k: v for k, v in parent.lora.items() if k not in request.lora_overrides}
    lora = request.recipe.lora.model_copy(update=inherited)
    changed = [
        key
        for key in ("r", "target_modules")
        if key in request.lora_overrides and getattr(request.recipe.lora, key) != parent.lora.get(key)
    ]
    if changed:
        raise Conflict(
            f"{parent.ref} has {', '.join(f'{k}={parent.lora.get(k)}' for k in changed)}; a continued "
            "adapter keeps its shape: drop the flag, or pass --fresh to start a new adapter"
        )
    return request.recipe.model_copy(update={"lora": lora})


def _digest(loaded: LoadedData) -> str:
    return bytes_digest("".join(line + "\n" for line in canonical_records(loaded.records)).encode())


def _store(registry: Registry, loaded: LoadedData) -> NewDataset:
    return registry.store_dataset(
        canonical_records(loaded.records), format=loaded.format, source=loaded.source
    )


def _replay(
    registry: Registry,
    parent: VersionRecord | None,
    recipe: Recipe,
    train_rows: int,
    warn: Callable[[str], None],
) -> tuple[list[dict[str, Any]], list[tuple[NewDataset, int, str]]]:
    """Rows sampled from the training data of the lineage, so that they make up ``replay`` of the mix."""
    share = recipe.training.replay
    if share <= 0:
        return [], []
    if parent is None:
        warn("--replay has no effect on a first version: there is no earlier data to replay")
        return [], []
    pool: list[tuple[str, dict[str, Any]]] = []
    for use in registry.lineage_datasets(parent):
        pool += [(use.dataset.digest, row) for row in registry.dataset_rows(use.dataset.digest)]
    wanted = round(share / (1 - share) * train_rows)
    if wanted > len(pool):
        warn(f"replay wants {wanted} rows, the lineage holds {len(pool)}: replaying all of them")
    chosen = random.Random(recipe.training.seed).sample(pool, min(wanted, len(pool)))
    per_dataset: dict[str, int] = {}
    for digest, _ in chosen:
        per_dataset[digest] = per_dataset.get(digest, 0) + 1
    sources = []
    for digest, rows in per_dataset.items():
        record = registry.store.dataset(digest)
        assert record is not None
        sources.append((record.as_new(), rows, f"replay {rows} rows"))
    return [row for _, row in chosen], sources


def _run_dir(
    settings: Settings,
    request: UpdateRequest,
    parent: VersionRecord | None,
    base_fingerprint: str,
    train_data: list[LoadedData],
    recipe: Recipe,
) -> Path:
    """The same request maps to the same run folder, which is how --resume finds its checkpoints."""
    key = bytes_digest(
        canonical_json(
            {
                "name": request.name,
                "parent": parent.ref if parent else None,
                "base": base_fingerprint,
                "data": [_digest(loaded) for loaded in train_data],
                "recipe": recipe.model_dump(mode="json"),
            }
        ).encode()
    ).split(":")[1][:16]
    run_dir = settings.runs_dir / f"{request.name}-{key}"
    checkpoints = run_dir / "checkpoints"
    if checkpoints.exists() and not request.resume:
        shutil.rmtree(checkpoints)  # an earlier attempt's checkpoints; without --resume we start over
    if request.resume and not any(checkpoints.glob("checkpoint-*")):
        log.warning("no checkpoint to resume from in %s: starting from the beginning", run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def _train(job: TrainJob, num_processes: int, run_dir: Path, progress: Any) -> TrainOutcome:
    handler = logging.FileHandler(run_dir / "train.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        (run_dir / "job.json").write_text(job.model_dump_json(indent=1, exclude={"records"}))
        if num_processes > 1:
            from loraledger.trainer.launch import launch

            return launch(job, num_processes, run_dir)
        from loraledger.trainer.recipe import train

        return train(job, progress=progress)
    finally:
        root.removeHandler(handler)
        handler.close()

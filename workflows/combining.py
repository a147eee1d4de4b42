"""Versions that were not trained: stacks of other versions (``adapters stack``) and adapters made
elsewhere (``adapters import``).

    stack:  resolve inputs -> same base? -> check configs -> load base -> add_weighted_adapter -> store
            -> register (kind stack for cat, merge for the weight-mixing methods; inputs and weights kept)
    import: fetch folder or Hub repo -> LoRA + safetensors? -> resolve and fingerprint its base -> same
            base as NAME's versions? -> load it on the base -> store -> register (kind import)

A new adapter's first version becomes current; a later one becomes current only with ``promote``,
since neither kind went through the forgetting gate.
"""

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loraledger.bases import recorded_base
from loraledger.schemas.errors import InvalidInput, NotFound
from loraledger.schemas.names import check_name
from loraledger.schemas.records import NewVersion, VersionKind, VersionRecord
from loraledger.settings import Settings
from loraledger.trainer import adapterfiles
from loraledger.trainer.versions import library_versions

Stage = Callable[[str], None]


@dataclass
class StackResult:
    version: VersionRecord
    promoted: bool
    details: dict[str, Any]


@dataclass
class ImportResult:
    version: VersionRecord
    promoted: bool
    source: str
    warnings: list[str] = field(default_factory=list)


def stack_kind(method: str) -> VersionKind:
    """``cat`` keeps every input's update as it is (a stack); the other methods mix them (a merge)."""
    return "stack" if method == "cat" else "merge"


def run_stack(
    settings: Settings,
    name: str,
    refs: list[str],
    *,
    weights: list[float] | None = None,
    method: str = "cat",
    density: float | None = None,
    promote: bool = False,
    note: str | None = None,
    stage: Stage = lambda message: None,
) -> StackResult:
    from loraledger.trainer.combine import check_stackable

    check_name(name, "adapter name")
    registry = settings.open_registry()
    inputs = [registry.resolve(ref) for ref in refs]
    weights = weights if weights is not None else [1.0] * len(inputs)
    base = inputs[0].base
    for version in inputs[1:]:
        if not version.base.same_model(base):
            raise InvalidInput(
                f"{version.ref} was trained on {version.base.model_id}, {inputs[0].ref} on "
                f"{base.model_id} (or other weights of it): stacked adapters must share one base"
            )
    registry.check_base(name, base)
    first = not registry.has_versions(name)

    with tempfile.TemporaryDirectory(prefix="loraledger-stack-") as scratch:
        folders = [
            (version.ref, registry.checkout(version.ref, Path(scratch) / f"in{index}"))
            for index, version in enumerate(inputs)
        ]
        # Cheap checks first: refuse DoRA, unequal ranks etc. before loading a model.
        check_stackable([(ref, adapterfiles.read_config(folder)) for ref, folder in folders], weights, method)
        stage(f"loading base {base.model_id}")
        source = recorded_base(settings, base)
        stage(f"stacking {', '.join(refs)} ({method})")
        from loraledger.trainer.combine import stack_adapters

        outcome = stack_adapters(
            source, folders, weights, Path(scratch) / "stacked", method=method, density=density
        )
        artifact = registry.put_artifact(outcome.adapter_dir)

    version = registry.register(
        NewVersion(
            name=name,
            kind=stack_kind(method),
            base=base,
            lora=outcome.lora,
            training=outcome.record(),
            libraries=outcome.libraries,
            artifact_digest=artifact,
            note=note,
            inputs=[(item.ref, weight) for item, weight in zip(inputs, weights, strict=True)],
        ),
        promote=first or promote,
        reason=f"{stack_kind(method)} of {', '.join(v.ref for v in inputs)}",
    )
    return StackResult(version=version, promoted=first or promote, details=outcome.record())


def run_import(
    settings: Settings,
    name: str,
    source: str,
    *,
    base: str | None = None,
    base_revision: str | None = None,
    revision: str | None = None,
    promote: bool = False,
    note: str | None = None,
    stage: Stage = lambda message: None,
) -> ImportResult:
    from loraledger.fingerprints import fingerprint
    from loraledger.trainer.models import resolve_base

    check_name(name, "adapter name")
    registry = settings.open_registry()
    first = not registry.has_versions(name)
    warnings: list[str] = []
    with tempfile.TemporaryDirectory(prefix="loraledger-import-") as scratch:
        folder, origin = _fetch(source, revision, Path(scratch) / "download", stage)
        config = adapterfiles.read_config(folder)  # LoRA, safetensors
        base_id = base or config.get("base_model_name_or_path")
        if not base_id:
            raise InvalidInput(f"{source} does not name its base model: pass --base MODEL")
        if base is None and base_revision is None:
            base_revision = config.get("revision")  # peft records the base's revision there
        stage(f"resolving base {base_id}")
        try:
            base_source = resolve_base(base_id, cache_dir=settings.cache_dir, revision=base_revision)
        except NotFound as exc:
            hint = "" if base else " (named in its adapter_config.json): pass --base MODEL"
            raise NotFound(f"{exc}{hint}") from None
        base_record = fingerprint(base_source, settings.cache_dir)
        registry.check_base(name, base_record)
        if adapterfiles.special_features(config):
            warnings.append(
                f"{source} uses {' and '.join(adapterfiles.special_features(config))}: "
                "`adapters stack` will refuse it, and vLLM rejects DoRA and modules_to_save"
            )
        stage(f"loading {source} on {base_id}")
        from loraledger.trainer.merge import check_fits

        # A damaged file gets one line naming it, not safetensors' own error from inside the loader.
        adapterfiles.check_safetensors(folder / adapterfiles.WEIGHTS_FILE)
        parameters = check_fits(base_source, folder)
        # Only the adapter itself: no template card, no training leftovers; the canonical base named.
        staged = Path(scratch) / "adapter"
        staged.mkdir()
        for file in (adapterfiles.CONFIG_FILE, adapterfiles.WEIGHTS_FILE):
            shutil.copy2(folder / file, staged / file)
        adapterfiles.set_base(staged, base_source.model_id, base_source.revision)
        artifact = registry.put_artifact(staged)

    training = {**origin, "parameters": parameters, "peft_version": config.get("peft_version")}
    version = registry.register(
        NewVersion(
            name=name,
            kind="import",
            base=base_record,
            lora=adapterfiles.lora_shape(config),
            training=training,
            libraries=library_versions(),
            artifact_digest=artifact,
            note=note,
        ),
        promote=first or promote,
        reason=f"imported from {training['source']}",
    )
    return ImportResult(version=version, promoted=first or promote, source=source, warnings=warnings)


def _fetch(source: str, revision: str | None, dest: Path, stage: Stage) -> tuple[Path, dict[str, Any]]:
    """A local adapter folder, or a Hub repo downloaded into ``dest``; with where it came from."""
    local = Path(source).expanduser()
    if local.is_dir():
        if revision is not None:
            raise InvalidInput("--revision applies to Hub repositories, not to a local folder")
        return local, {"source": str(local.resolve())}
    if local.exists() or source.startswith((".", "/", "~")) or source.count("/") != 1:
        raise NotFound(f"{source} is neither an adapter folder nor a Hub repository id (OWNER/NAME)")
    from loraledger.hub import download_adapter

    stage(f"downloading {source}")
    folder, commit = download_adapter(source, revision, dest)
    return folder, {"source": source, "source_revision": commit, "hub": True}

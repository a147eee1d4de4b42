"""A version ready for inference: its recorded base, verified, with the adapter applied."""

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loraledger.bases import recorded_base
from loraledger.evaluation import resolve_target
from loraledger.registry import Registry
from loraledger.settings import Settings

if TYPE_CHECKING:
    from loraledger.schemas.records import BaseModelRecord, VersionRecord


@dataclass
class LoadedVersion:
    """``model`` is a ``PeftModel`` in eval mode (the bare base for ``NAME@base``); ``tokenizer`` is the
    base's own; ``version`` is the record it was resolved to when loaded (aliases move later)."""

    model: Any
    tokenizer: Any
    version: "VersionRecord"
    base_only: bool = False

    def __iter__(self) -> Any:  # model, tokenizer = ledger.load("legal")
        return iter((self.model, self.tokenizer))


def load_version(
    settings: Settings, registry: Registry, ref: str, *, device: str | None = None
) -> LoadedVersion:
    from loraledger.trainer.evaluate import load_for_eval

    target = resolve_target(registry, ref)
    base = recorded_base(settings, target.version.base)
    if target.base_only:
        model, tokenizer = load_for_eval(base, None, device=device)
        return LoadedVersion(model, tokenizer, target.version, base_only=True)
    # PEFT reads the adapter's files while loading, so the checkout may go once it is loaded.
    with tempfile.TemporaryDirectory(prefix="loraledger-load-") as scratch:
        adapter = registry.checkout(target.version.ref, Path(scratch) / "adapter")
        model, tokenizer = load_for_eval(base, adapter, device=device)
    return LoadedVersion(model, tokenizer, target.version)


def identify_base(settings: Settings, model_id: str, *, revision: str | None = None) -> "BaseModelRecord":
    """``model_id`` (``builtin:tiny``, a folder, a Hub id) as versions record their base: by digests."""
    from loraledger.fingerprints import fingerprint
    from loraledger.trainer.models import resolve_base

    source = resolve_base(model_id, cache_dir=settings.cache_dir, revision=revision)
    return fingerprint(source, settings.cache_dir)


def load_base(settings: Settings, base: "BaseModelRecord", *, device: str | None = None) -> tuple[Any, Any]:
    """The bare base in eval mode and its tokenizer, loaded the way ``load_version`` loads it (same
    dtype, same device choice), so an adapter put on it later computes what ``Ledger.load`` gives."""
    from loraledger.trainer.evaluate import load_for_eval

    return load_for_eval(recorded_base(settings, base), None, device=device)


def adapter_folder(registry: Registry, artifact_digest: str, cache: Path) -> Path:
    """The adapter files of ``artifact_digest`` in ``cache``/<hex>, checked out (verified) on first
    use. The folder is named by the content digest and moved into place whole, so a folder that
    exists holds exactly those files and is reused as it is."""
    folder = cache / artifact_digest.partition(":")[2]
    if folder.is_dir():
        return folder
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".checkout-", dir=cache) as scratch:
        staged = registry.artifacts.get_folder(artifact_digest, Path(scratch) / "adapter")
        try:
            staged.rename(folder)
        except OSError:
            if not folder.is_dir():  # not another process having put the same folder in place first
                raise
    return folder

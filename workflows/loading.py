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
    from loraledger.schemas.records import VersionRecord


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

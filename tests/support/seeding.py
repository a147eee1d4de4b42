"""Registering versions without training: small real artifacts through the real Registry, for tests of
what happens around a registration (verify, gc, aliases, crashes) that need no model."""

import tempfile
from pathlib import Path

from loraledger.registry import Registry
from loraledger.registry.digests import bytes_digest, canonical_json
from loraledger.schemas.records import BaseModelRecord, NewDatasetUse, NewVersion, VersionRecord

BASE = BaseModelRecord(
    model_id="builtin:tiny", config_digest=bytes_digest(b"config"), weights_digest=bytes_digest(b"weights")
)


def seed_version(
    registry: Registry,
    name: str,
    *,
    weights: bytes,
    parent: str | None = None,
    rows: list[str] | None = None,
    promote: bool = True,
    base: BaseModelRecord = BASE,
    weights_file: str = "adapter_model.safetensors",
    note: str | None = None,
) -> VersionRecord:
    """Store an adapter folder holding ``weights`` and a dataset of ``rows``, then register them."""
    with tempfile.TemporaryDirectory(prefix="loraledger-seed-") as scratch:
        folder = Path(scratch)
        (folder / weights_file).write_bytes(weights)
        (folder / "adapter_config.json").write_text('{"r": 8, "lora_alpha": 16}\n')
        artifact = registry.put_artifact(folder)
    lines = sorted(canonical_json({"text": row}) for row in (rows or [f"{name} {weights!r}"]))
    dataset = registry.store_dataset(lines, format="jsonl", source=f"{name}.jsonl")
    return registry.register(
        NewVersion(
            name=name,
            kind="train",
            parent=parent,
            base=base,
            artifact_digest=artifact,
            datasets=[NewDatasetUse(dataset=dataset, role="train", rows=len(lines))],
            note=note,
        ),
        promote=promote,
    )

"""Registries built directly with ``Registry.register``: no training, tiny artifacts, real records.

Tests of the registry and of the read-only commands use these to set up lineages, datasets, scores
and aliases in milliseconds. Everything registered goes through the same code path as a trained
version (artifact stored first, then one registration transaction).
"""

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from loraledger.registry import Registry
from loraledger.registry.digests import dataset_digest, tag
from loraledger.schemas.records import (
    BaseModelRecord,
    NewDataset,
    NewDatasetUse,
    NewEval,
    NewVersion,
    VersionKind,
    VersionRecord,
)

BASE = BaseModelRecord(model_id="builtin:tiny", config_digest=tag("c" * 64), weights_digest=tag("d" * 64))
OTHER_BASE = BaseModelRecord(
    model_id="meta-llama/Llama-3.1-8B",
    revision="0e9e39f249a16976918f6564b8830bc894c89659",
    config_digest=tag("e" * 64),
)


def dataset(text: str, rows: int = 3, source: str | None = None) -> NewDataset:
    """A dataset description whose digest is the real canonical digest of ``rows`` records."""
    records = [{"text": f"{text} {i}"} for i in range(rows)]
    return NewDataset(
        digest=dataset_digest(records), format="jsonl", rows=rows, source=source or f"/data/{text}.jsonl"
    )


def add_version(
    registry: Registry,
    name: str,
    *,
    parent: str | None = None,
    kind: VersionKind = "train",
    data: Sequence[str] = ("data",),
    eval_data: Sequence[str] = (),
    scores: dict[str, float] | None = None,
    inputs: Sequence[tuple[str, float]] = (),
    base: BaseModelRecord = BASE,
    promote: bool = True,
    only_if_current: tuple[int | None] | None = None,
    reason: str | None = None,
    learning_rate: float = 2e-4,
    rank: int = 8,
    seed: int = 0,
    final_loss: float | None = 2.5,
    note: str | None = None,
    setting: str = "fp32 w512/s256",
) -> VersionRecord:
    """Register one version; ``scores`` maps an eval dataset's text to its NLL, scored in ``setting``."""
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        (folder / "adapter_config.json").write_text(f'{{"r": {rank}, "parent": "{parent}"}}')
        (folder / "adapter_model.safetensors").write_bytes(f"{name} {parent} {list(data)} {seed}".encode())
        artifact = registry.put_artifact(folder)
    uses = [NewDatasetUse(dataset=dataset(text), role="train", rows=3, tokens=30) for text in data]
    uses += [
        NewDatasetUse(dataset=dataset(text), role="eval", rows=3, label=f"{text} eval") for text in eval_data
    ]
    evals = [
        NewEval(dataset=dataset(text), metric="nll", value=value, setting=setting, label=f"{text} eval")
        for text, value in (scores or {}).items()
    ]
    return registry.register(
        NewVersion(
            name=name,
            kind=kind,
            parent=parent,
            base=base,
            lora={"r": rank, "alpha": 2 * rank, "target_modules": ["q_proj", "v_proj"]},
            training={"learning_rate": learning_rate, "epochs": 1.0, "max_length": 128},
            seed=seed,
            libraries={"torch": "2.13.0", "peft": "0.21.2"},
            train_tokens=30 * len(data),
            final_loss=final_loss,
            artifact_digest=artifact,
            note=note,
            datasets=uses,
            evals=evals,
            inputs=list(inputs),
        ),
        promote=promote,
        reason=reason,
        only_if_current=only_if_current,
    )


def chain(registry: Registry, name: str, length: int, **kwargs: Any) -> list[VersionRecord]:
    """``length`` versions, each continuing the previous one, on data ``name-1``, ``name-2``, ..."""
    versions: list[VersionRecord] = []
    for index in range(1, length + 1):
        parent = versions[-1].ref if versions else None
        versions.append(add_version(registry, name, parent=parent, data=[f"{name}-{index}"], **kwargs))
    return versions

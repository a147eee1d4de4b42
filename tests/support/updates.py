"""One small, deterministic training update through the recipe itself, for tests that train the same
update two ways and compare the adapters."""

from pathlib import Path

import torch
from safetensors.torch import load_file

from loraledger.schemas.jobs import BaseSource, TrainJob, TrainOutcome
from loraledger.schemas.specs import LoraSpec, TrainSpec

RECORDS = [
    {"text": f"Clause {i}: the licensee keeps every notice and pays the fee of {i} euros."} for i in range(40)
]


def train_small_update(tiny_base: Path, folder: Path) -> tuple[TrainOutcome, dict[str, torch.Tensor]]:
    """Train ``RECORDS`` on ``builtin:tiny`` into ``folder``: micro-batches of 4 rows of 64 tokens, no
    dropout (its masks are drawn per forward pass, so two ways of computing a step would draw others).
    Returns the outcome and the saved adapter's weights."""
    from loraledger.trainer import recipe

    outcome = recipe.train(
        TrainJob(
            base=BaseSource(model_id="builtin:tiny", path=tiny_base),
            lora=LoraSpec(r=4, alpha=8, dropout=0.0, target_modules=["q_proj", "v_proj"]),
            training=TrainSpec(learning_rate=1e-2, epochs=1, max_length=64, batch_tokens=256, seed=3),
            records=RECORDS,
            output_dir=folder / "adapter",
            checkpoint_dir=folder / "checkpoints",
        )
    )
    return outcome, load_file(str(outcome.adapter_dir / "adapter_model.safetensors"))

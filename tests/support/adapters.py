"""PEFT LoRA adapters made directly (no training), with random non-zero A and B so that they change the
logits, and the helpers tests use to compare what a model computes."""

import json
from pathlib import Path
from typing import Any

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import AutoModelForCausalLM, PreTrainedModel

PROBE = torch.randint(0, 400, (2, 24), generator=torch.Generator().manual_seed(7))


def make_lora(
    base: Path,
    folder: Path,
    *,
    r: int = 4,
    seed: int = 0,
    base_id: str | None = None,
    targets: tuple[str, ...] = ("q_proj", "v_proj"),
    **config: Any,
) -> Path:
    """Save a LoRA adapter for the model in ``base``, naming ``base_id`` as its base (default: the folder)."""
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    lora = LoraConfig(
        r=r,
        lora_alpha=2 * r,
        target_modules=list(targets),
        init_lora_weights=False,  # random B too: a fresh LoRA would change nothing
        task_type="CAUSAL_LM",
        **config,
    )
    get_peft_model(model, lora).save_pretrained(str(folder))
    if base_id is not None:
        path = folder / "adapter_config.json"
        path.write_text(json.dumps(json.loads(path.read_text()) | {"base_model_name_or_path": base_id}))
    return folder


def load_base(base: Path) -> PreTrainedModel:
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    model.eval()
    return model


@torch.no_grad()
def logits(model: torch.nn.Module, ids: torch.Tensor = PROBE) -> torch.Tensor:
    """Logits on a fixed batch (token ids folded into the model's vocabulary)."""
    vocabulary = int(model.get_input_embeddings().weight.shape[0])  # type: ignore[operator]
    output: torch.Tensor = model(input_ids=ids % vocabulary, use_cache=False).logits
    return output


def with_adapter(base: Path, adapter: Path) -> PeftModel:
    model = PeftModel.from_pretrained(load_base(base), str(adapter))
    model.eval()
    return model

"""QLoRA (4-bit NF4), 8-bit and gradient checkpointing train for real on CPU (bitsandbytes >= 0.49)."""

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file
from support.tiny_models import bpe_tokenizer, save_base

from loraledger.schemas.jobs import BaseSource, TrainJob, TrainOutcome
from loraledger.schemas.specs import LoraSpec, TrainSpec
from loraledger.trainer import models, recipe

TEXTS = [f"Clause {i}: the licensee shall keep record {i * 7} for audit." for i in range(40)]


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_base(tmp_path_factory.mktemp("base"), bpe_tokenizer(TEXTS, vocab_size=300))


def run(
    tmp_path: Path, base: Path, monkeypatch: pytest.MonkeyPatch, **training: Any
) -> tuple[TrainOutcome, Any]:
    """Train on TEXTS; returns the outcome and the model the recipe trained."""
    loaded: list[Any] = []
    load_model = models.load_model

    def keep(*args: Any, **kwargs: Any) -> Any:
        loaded.append(load_model(*args, **kwargs))
        return loaded[-1]

    monkeypatch.setattr(models, "load_model", keep)
    job = TrainJob(
        base=BaseSource(model_id="tiny", path=base),
        lora=LoraSpec(r=4),
        training=TrainSpec(max_length=32, batch_tokens=128, learning_rate=1e-2, epochs=1, **training),
        records=[{"text": text} for text in TEXTS],
        output_dir=tmp_path / "adapter",
        checkpoint_dir=tmp_path / "checkpoints",
    )
    return recipe.train(job), loaded[0]


def assert_trained(outcome: TrainOutcome) -> None:
    assert outcome.steps > 0 and outcome.final_loss is not None and outcome.final_loss == outcome.final_loss
    weights = load_file(str(outcome.adapter_dir / "adapter_model.safetensors"))
    lora_b = [tensor for key, tensor in weights.items() if "lora_B" in key]
    assert lora_b and all(bool(tensor.abs().sum() > 0) for tensor in lora_b)  # B starts at zero


@pytest.mark.slow
@pytest.mark.parametrize("quantize", ["4bit", "8bit"])
def test_quantized_bases_train_with_bitsandbytes_layers(
    tmp_path: Path, base: Path, monkeypatch: pytest.MonkeyPatch, quantize: str
) -> None:
    import bitsandbytes as bnb

    outcome, model = run(tmp_path, base, monkeypatch, quantize=quantize)
    assert_trained(outcome)
    expected = bnb.nn.Linear4bit if quantize == "4bit" else bnb.nn.Linear8bitLt
    projections = [module for name, module in model.named_modules() if name.endswith("self_attn.q_proj")]
    assert projections and all(isinstance(module.base_layer, expected) for module in projections)
    mlp = [module for name, module in model.named_modules() if name.endswith("mlp.down_proj")]
    assert mlp and all(isinstance(module, expected) for module in mlp)  # not adapted, still quantized
    if quantize == "4bit":
        config = model.config.quantization_config
        assert (config.bnb_4bit_quant_type, config.bnb_4bit_use_double_quant) == ("nf4", True)
        assert projections[0].base_layer.weight.dtype == torch.uint8
    else:
        assert projections[0].base_layer.weight.dtype == torch.int8
    saved = json.loads((outcome.adapter_dir / recipe.RECIPE_FILE).read_text())
    assert saved["training"]["quantize"] == quantize


@pytest.mark.slow
def test_gradient_checkpointing_trains(tmp_path: Path, base: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    outcome, model = run(tmp_path, base, monkeypatch, gradient_checkpointing=True)
    assert model.is_gradient_checkpointing
    assert_trained(outcome)


@pytest.mark.parametrize(
    ("precision", "device", "bf16_supported", "expected"),
    [
        ("auto", "cpu", True, torch.float32),  # CPU trains in fp32 whatever it supports
        ("auto", "cuda:0", True, torch.bfloat16),
        ("auto", "cuda:0", False, torch.float32),  # e.g. a V100: no bf16, and fp16 is asked for by name
        ("fp16", "cuda:1", False, torch.float16),
        ("fp32", "cuda:0", True, torch.float32),
    ],
)
def test_the_compute_precision_follows_the_device(
    monkeypatch: pytest.MonkeyPatch, precision: str, device: str, bf16_supported: bool, expected: torch.dtype
) -> None:
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: bf16_supported)
    assert models.compute_dtype(precision, device) == expected


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_half_precision_on_cpu_is_refused(precision: str) -> None:
    from loraledger.schemas.errors import InvalidInput

    with pytest.raises(InvalidInput, match=f"{precision} training needs a GPU here; use --precision fp32"):
        models.compute_dtype(precision, "cpu")

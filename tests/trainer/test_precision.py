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
    ("precision", "device", "bf16_supported", "cpu_bf16", "expected"),
    [
        ("auto", "cpu", True, None, torch.float32),  # no native bf16 on this CPU: fp32
        ("auto", "cpu", False, "AVX512-BF16", torch.bfloat16),  # native: bf16 autocast
        ("bf16", "cpu", False, "AMX-BF16", torch.bfloat16),
        ("fp32", "cpu", False, "AMX-BF16", torch.float32),
        ("auto", "cuda:0", True, None, torch.bfloat16),
        ("auto", "cuda:0", False, "AVX512-BF16", torch.float32),  # e.g. a V100: fp16 is asked for by name
        ("fp16", "cuda:1", False, None, torch.float16),
        ("fp32", "cuda:0", True, None, torch.float32),
    ],
)
def test_the_compute_precision_follows_the_device(
    monkeypatch: pytest.MonkeyPatch,
    precision: str,
    device: str,
    bf16_supported: bool,
    cpu_bf16: str | None,
    expected: torch.dtype,
) -> None:
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: bf16_supported)
    monkeypatch.setattr(models, "cpu_bf16", lambda: cpu_bf16)
    assert models.compute_dtype(precision, device) == expected


def test_bf16_on_a_cpu_without_native_support_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from loraledger.schemas.errors import InvalidInput

    monkeypatch.setattr(models, "cpu_bf16", lambda: None)
    with pytest.raises(InvalidInput, match="bf16 on this CPU would be emulated"):
        models.compute_dtype("bf16", "cpu")
    with pytest.raises(InvalidInput, match="fp16 training needs a GPU"):
        models.compute_dtype("fp16", "cpu")


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ("flags\t\t: fpu sse avx avx2 avx512f", None),
        ("flags\t\t: fpu avx2 avx512f avx512_bf16", "AVX512-BF16"),
        ("flags\t\t: fpu avx512_bf16 amx_bf16 amx_tile", "AMX-BF16"),
        ("Features\t: fp asimd sve bf16 i8mm", "Arm BF16"),
    ],
)
def test_native_bf16_is_read_from_the_cpu_flags(
    monkeypatch: pytest.MonkeyPatch, flags: str, expected: str | None
) -> None:
    monkeypatch.setattr(models, "_cpu_flags", lambda: set(flags.partition(":")[2].split()))
    assert models.cpu_bf16() == expected


def test_cpu_bf16_trains_under_autocast_over_fp32_weights(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What the recipe asks of the Trainer on a CPU with native bf16: fp32 weights, bf16 autocast."""
    monkeypatch.setattr(models, "cpu_bf16", lambda: "AMX-BF16")
    compute = models.compute_dtype("auto", "cpu")
    assert (compute, models.load_dtype(compute, "cpu")) == (torch.bfloat16, torch.float32)
    assert models.describe_precision(compute, "cpu") == (
        "bf16 autocast on CPU (AMX-BF16), base, LoRA weights and optimizer state fp32"
    )
    assert models.load_dtype(torch.bfloat16, "cuda:0") == torch.bfloat16

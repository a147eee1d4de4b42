"""Stacking adapters (exact cat, the mixing methods and their refusals), merging into a full-precision
base with a logit check, and the serving checks of an export, on a tiny random Llama."""

import json
from pathlib import Path

import pytest
import torch
from peft import PeftModel
from safetensors.torch import load_file
from support.adapters import load_base, logits, make_lora, with_adapter
from support.tiny_models import bpe_tokenizer, save_base
from transformers import AutoModelForCausalLM

from loraledger.schemas.errors import Conflict, InvalidInput
from loraledger.schemas.jobs import BaseSource
from loraledger.trainer.combine import check_stackable, stack_adapters
from loraledger.trainer.export import export_adapter, vllm_findings
from loraledger.trainer.merge import MERGE_TOLERANCE, merge_adapter

TEXTS = ["def add(a, b):\n    return a + b\n", "The court held that the contract was void.\n"] * 20


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> BaseSource:
    folder = save_base(tmp_path_factory.mktemp("base"), bpe_tokenizer(TEXTS, vocab_size=300))
    return BaseSource(model_id="org/tiny", path=folder, revision="abc123")


def lora_config(r: int = 8, **extra: object) -> dict[str, object]:
    return {"peft_type": "LORA", "r": r, "lora_alpha": 16, "target_modules": ["q_proj"], **extra}


def test_cat_is_exact_with_weights(base: BaseSource, tmp_path: Path) -> None:
    first = make_lora(base.path, tmp_path / "first", r=4, seed=1)
    second = make_lora(base.path, tmp_path / "second", r=8, seed=2, targets=("q_proj", "v_proj", "o_proj"))
    outcome = stack_adapters(
        base, [("a@1", first), ("b@1", second)], [1.0, 0.5], tmp_path / "stacked", method="cat"
    )
    assert outcome.lora["r"] == 12 and outcome.lora["target_modules"] == ["o_proj", "q_proj", "v_proj"]
    assert outcome.max_logit_diff is not None and outcome.max_logit_diff <= 1e-5

    # Independently of the outcome's own check: both inputs active at once, the second at half strength.
    together = PeftModel.from_pretrained(load_base(base.path), str(first), adapter_name="a")
    together.load_adapter(str(second), adapter_name="b")
    for module in together.modules():
        if hasattr(module, "set_scale"):
            module.set_scale("b", 0.5)
    together.base_model.set_adapter(["a", "b"])
    together.eval()
    stacked = with_adapter(base.path, tmp_path / "stacked")
    expected = logits(together)
    assert (logits(stacked) - expected).abs().max() <= 1e-5
    assert (logits(with_adapter(base.path, first)) - expected).abs().max() > 1e-2  # not a no-op

    config = json.loads((tmp_path / "stacked" / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == "org/tiny" and config["revision"] == "abc123"
    assert not (tmp_path / "stacked" / "README.md").exists()


@pytest.mark.parametrize(("method", "rank"), [("linear", 4), ("svd", 4), ("ties", 4), ("dare_ties", 4)])
def test_mixing_methods_build_an_adapter_of_the_input_rank(
    base: BaseSource, tmp_path: Path, method: str, rank: int
) -> None:
    inputs = [
        ("a@1", make_lora(base.path, tmp_path / "a", seed=1)),
        ("b@1", make_lora(base.path, tmp_path / "b", seed=2)),
    ]
    outcome = stack_adapters(base, inputs, [0.7, 0.3], tmp_path / "out", method=method)
    assert outcome.lora["r"] == rank
    assert outcome.max_logit_diff is None  # only cat is exact, so only cat is checked against the inputs
    assert outcome.density == (0.5 if method in ("ties", "dare_ties") else None)
    weights = load_file(tmp_path / "out" / "adapter_model.safetensors")
    assert weights and all(torch.isfinite(tensor).all() for tensor in weights.values())
    assert any(tensor.abs().sum() > 0 for tensor in weights.values())


@pytest.mark.parametrize("method", ["linear", "ties", "dare_ties"])
def test_equal_rank_methods_refuse_unequal_ranks(method: str) -> None:
    with pytest.raises(
        Conflict, match=rf"--method {method} needs inputs of equal rank \(a@1 r=8, b@2 r=16\)"
    ):
        check_stackable([("a@1", lora_config(8)), ("b@2", lora_config(16))], [1.0, 1.0], method)
    check_stackable([("a@1", lora_config(8)), ("b@2", lora_config(16))], [1.0, 1.0], "cat")
    check_stackable([("a@1", lora_config(8)), ("b@2", lora_config(16))], [1.0, 1.0], "svd")


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ({"use_dora": True}, "DoRA"),
        ({"use_rslora": True}, "rsLoRA"),
        ({"lora_bias": True}, "LoRA bias"),
        ({"modules_to_save": ["lm_head"]}, "modules_to_save"),
    ],
)
def test_inputs_peft_combines_wrongly_are_refused(extra: dict[str, object], named: str) -> None:
    with pytest.raises(Conflict, match=f"b@1 uses .*{named}"):
        check_stackable([("a@1", lora_config()), ("b@1", lora_config(**extra))], [1.0, 1.0], "cat")


def test_stack_arguments_are_checked() -> None:
    with pytest.raises(InvalidInput, match="at least two"):
        check_stackable([("a@1", lora_config())], [1.0], "cat")
    with pytest.raises(InvalidInput, match="one weight per input"):
        check_stackable([("a@1", lora_config()), ("b@1", lora_config())], [1.0], "cat")
    with pytest.raises(InvalidInput, match="unknown --method"):
        check_stackable([("a@1", lora_config()), ("b@1", lora_config())], [1.0, 1.0], "magic")


@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
def test_merge_matches_base_plus_adapter(base: BaseSource, tmp_path: Path, dtype: str) -> None:
    adapter = make_lora(base.path, tmp_path / "adapter", r=8, seed=3)
    outcome = merge_adapter(base, adapter, tmp_path / "merged", dtype=dtype)
    assert outcome.max_logit_diff <= MERGE_TOLERANCE
    assert {"model.safetensors", "config.json", "tokenizer.json"} <= set(outcome.files)

    saved = load_file(tmp_path / "merged" / "model.safetensors")
    assert {tensor.dtype for tensor in saved.values()} == {
        torch.float32 if dtype == "fp32" else torch.bfloat16
    }
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "merged", dtype=torch.float32)
    assert merged.config.use_cache is True
    expected = logits(with_adapter(base.path, adapter))
    difference = float((logits(merged) - expected).abs().max())
    if dtype == "fp32":
        assert difference <= MERGE_TOLERANCE
        assert outcome.saved_max_logit_diff <= MERGE_TOLERANCE
    else:  # bf16 rounding: measured and recorded, not bounded
        assert outcome.saved_max_logit_diff > outcome.max_logit_diff
        assert difference < 0.05
    assert (logits(load_base(base.path)) - expected).abs().max() > 1e-2  # the adapter mattered


def test_merge_refuses_a_folder_in_use(base: BaseSource, tmp_path: Path) -> None:
    adapter = make_lora(base.path, tmp_path / "adapter", seed=3)
    (tmp_path / "merged").mkdir()
    (tmp_path / "merged" / "keep.txt").write_text("mine")
    with pytest.raises(InvalidInput, match="not empty"):
        merge_adapter(base, adapter, tmp_path / "merged")
    assert [p.name for p in (tmp_path / "merged").iterdir()] == ["keep.txt"]


def test_vllm_constraints() -> None:
    assert vllm_findings(lora_config(16)) == ([], None)
    assert vllm_findings(lora_config(17)) == ([], 32)
    assert vllm_findings(lora_config(8, rank_pattern={"q_proj": 64})) == ([], 64)
    problems, _ = vllm_findings(lora_config(8, use_dora=True, modules_to_save=["lm_head"]))
    assert problems == ["modules_to_save (lm_head)", "DoRA (use_dora)"]


def test_vllm_export_refuses_dora(base: BaseSource, tmp_path: Path) -> None:
    adapter = make_lora(base.path, tmp_path / "adapter", use_dora=True)
    with pytest.raises(Conflict, match=r"vLLM cannot serve x-v1: it rejects adapters with DoRA"):
        export_adapter(
            adapter,
            tmp_path / "out",
            module_name="x-v1",
            base_id="org/tiny",
            base_revision=None,
            format="vllm",
        )
    export_adapter(
        adapter, tmp_path / "out", module_name="x-v1", base_id="org/tiny", base_revision=None, format="peft"
    )

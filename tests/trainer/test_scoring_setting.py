"""The scoring setting names what changes the numbers (weights format, compute dtype, window, stride,
text field), without loading a model, and agrees with the dtype load_for_eval loads in."""

from pathlib import Path
from typing import Any

import pytest
import torch

from loraledger.schemas.errors import InvalidInput
from loraledger.schemas.jobs import BaseSource
from loraledger.schemas.specs import EvalSpec
from loraledger.trainer import evaluate, models
from loraledger.trainer.evaluate import scoring_setting


@pytest.fixture
def bf16_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """A CUDA device that supports bf16, as far as the dtype choice can tell."""
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: True)


def test_settings_on_cpu_are_fp32() -> None:
    spec = EvalSpec()
    assert scoring_setting("none", spec, "cpu") == "fp32 w512/s256"
    assert scoring_setting("4bit", spec, "cpu") == "nf4/fp32 w512/s256"
    assert scoring_setting("8bit", spec, "cpu") == "int8/fp32 w512/s256"


def test_settings_on_a_bf16_gpu(bf16_gpu: None) -> None:
    spec = EvalSpec()
    assert scoring_setting("none", spec, "cuda:0") == "bf16 w512/s256"
    assert scoring_setting("4bit", spec, "cuda:0") == "nf4/bf16 w512/s256"
    assert scoring_setting("8bit", spec, "cuda:1") == "int8/bf16 w512/s256"


def test_window_stride_and_text_field_are_part_of_it() -> None:
    spec = EvalSpec(max_length=64, stride=32, batch_tokens=128)
    assert scoring_setting("none", spec, "cpu") == "fp32 w64/s32"
    # the batch budget only regroups the same windows (tests/trainer/test_scoring.py): not part of it
    assert scoring_setting("none", spec.model_copy(update={"batch_tokens": 4096}), "cpu") == "fp32 w64/s32"
    assert scoring_setting("4bit", spec, "cpu", text_field="body") == "nf4/fp32 w64/s32 field=body"
    assert scoring_setting("4bit", spec, "cpu", text_field="text") == "nf4/fp32 w64/s32"


def test_an_unknown_quantization_is_refused() -> None:
    with pytest.raises(InvalidInput, match="unknown quantization '3bit'"):
        scoring_setting("3bit", EvalSpec(), "cpu")


@pytest.mark.parametrize("device", ["cpu", "cuda:0"])
def test_load_for_eval_loads_in_the_dtype_the_setting_names(
    device: str, bf16_gpu: None, tiny_base: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loaded: dict[str, Any] = {}

    def load_model(source: BaseSource, **kwargs: Any) -> torch.nn.Module:
        loaded.update(kwargs)
        return torch.nn.Linear(1, 1)

    monkeypatch.setattr(models, "load_model", load_model)
    evaluate.load_for_eval(
        BaseSource(model_id="builtin:tiny", path=tiny_base), None, quantize="4bit", device=device
    )
    named = scoring_setting("4bit", EvalSpec(), device).split()[0].split("/")[1]
    assert (loaded["quantize"], loaded["device"]) == ("4bit", device)
    assert evaluate.DTYPE_NAMES[loaded["dtype"]] == named == ("bf16" if device.startswith("cuda") else "fp32")

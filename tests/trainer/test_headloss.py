"""The loss computed with the output layer in chunks: the model's own loss and gradients, less memory."""

import importlib
import inspect
import random
from pathlib import Path
from typing import Any

import pytest
import torch
from peft import LoraConfig, get_peft_model
from support.updates import train_small_update
from transformers import AutoModelForCausalLM
from transformers.loss.loss_utils import ForCausalLMLoss

from loraledger.trainer import attention, data, headloss


def labelled(rows: int, width: int, vocabulary: int, *, ignored: float, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, vocabulary, (rows, width), generator=generator)
    labels[torch.rand(rows, width, generator=generator) < ignored] = data.IGNORE
    return labels


@pytest.mark.parametrize("chunk", [1, 7, 512])
def test_the_loss_and_its_gradient_are_transformers_causal_lm_loss(
    chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(headloss, "CHUNK_POSITIONS", chunk)  # 7: chunks of 7 and a ragged last one
    torch.manual_seed(0)
    weight = torch.randn(300, 16) * 0.3
    hidden = torch.randn(3, 40, 16, requires_grad=True)
    labels = labelled(3, 40, 300, ignored=0.3)
    items = int((labels[:, 1:] != data.IGNORE).sum()) + 5  # any divisor, as over a whole step

    expected = ForCausalLMLoss(hidden @ weight.T, labels, 300, num_items_in_batch=torch.tensor(items))
    (expected_grad,) = torch.autograd.grad(expected * 3.0, hidden)
    loss = headloss.linear_cross_entropy(hidden, weight, labels, items)
    (grad,) = torch.autograd.grad(loss * 3.0, hidden)

    assert float(expected) > 1.0
    assert torch.allclose(loss, expected, rtol=1e-6, atol=0)
    assert torch.allclose(grad, expected_grad, rtol=1e-5, atol=1e-7)
    # an unlabelled position (the last of each row, and the ignored ones) gets no gradient
    shifted = torch.nn.functional.pad(labels, (0, 1), value=data.IGNORE)[:, 1:]
    assert grad[shifted == data.IGNORE].abs().max() == 0
    assert grad[shifted != data.IGNORE].abs().amax(-1).min() > 0


def test_positions_without_labels_give_a_zero_loss_and_a_zero_gradient() -> None:
    hidden = torch.randn(2, 8, 4, requires_grad=True)
    labels = torch.full((2, 8), data.IGNORE)
    loss = headloss.linear_cross_entropy(hidden, torch.randn(10, 4), labels, 1)
    loss.backward()
    assert float(loss) == 0.0
    assert hidden.grad is not None and float(hidden.grad.abs().max()) == 0.0


def test_chunks_keep_their_logits_within_the_byte_budget() -> None:
    assert headloss.chunk_positions(3072) == 512  # builtin:tiny
    assert headloss.chunk_positions(49152) == 512  # SmolLM2: 96 MiB of logits
    assert headloss.chunk_positions(131072) == 512  # exactly 256 MiB
    assert headloss.chunk_positions(262144) == 256  # Gemma's vocabulary
    assert headloss.chunk_positions(1 << 40) == 1


@pytest.mark.parametrize("model_type", sorted(headloss.FUSABLE_MODEL_TYPES))
def test_each_fusable_model_computes_its_logits_and_loss_the_way_the_fusion_assumes(model_type: str) -> None:
    """Guards the allow-list against a transformers release that changes one of these forwards."""
    module = importlib.import_module(f"transformers.models.{model_type}.modeling_{model_type}")
    (model_class,) = [
        value
        for name, value in vars(module).items()
        if name.endswith("ForCausalLM") and inspect.isclass(value) and value.__module__ == module.__name__
    ]
    source = inspect.getsource(model_class.forward)
    lines = [line.strip() for line in source.splitlines()]
    assert "logits = self.lm_head(hidden_states)" in lines
    assert [line for line in lines if line.startswith("logits =")] == ["logits = self.lm_head(hidden_states)"]
    assert [line for line in lines if line.startswith("hidden_states =")] == [
        "hidden_states = outputs.last_hidden_state",
        "hidden_states = slice_logits_to_keep(hidden_states, logits_to_keep)",
    ]
    assert any(line.startswith("loss = self.loss_function(logits=logits, labels=labels") for line in lines)
    assert "outputs: BaseModelOutputWithPast = self.model(" in lines


def lora(base: Path, targets: list[str]) -> Any:
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    model.config.use_cache = False  # as models.load_model sets it: with a cache, packed rows see each other
    config = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=targets, task_type="CAUSAL_LM")
    peft_model = get_peft_model(model, config)
    torch.manual_seed(0)
    for name, parameter in peft_model.named_parameters():
        if "lora_B" in name:  # non-zero, so that every LoRA weight gets a gradient
            torch.nn.init.normal_(parameter, std=0.02)
    return peft_model


def packed(seed: int = 0) -> dict[str, torch.Tensor]:
    rng = random.Random(seed)
    rows = [[60, 30, 20], [110], [5, 90]]  # several documents a row, row-end padding
    documents = [[[rng.randrange(3, 3000) for _ in range(n)] for n in row] for row in rows]
    return data.collate_rows([[data.Tokenized(ids, list(ids)) for ids in row] for row in documents], pad_id=0)


def gradients(model: Any) -> dict[str, torch.Tensor]:
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    return grads


def test_on_a_lora_model_it_trains_what_the_models_own_forward_trains(tiny_base: Path) -> None:
    model = lora(tiny_base, ["q_proj", "v_proj"])
    fused = headloss.head_loss_for(model)
    assert fused is not None
    batch = packed()
    items = torch.tensor(int((batch["labels"][:, 1:] != data.IGNORE).sum()))
    with attention.packed_attention(model.get_base_model()):
        expected = model(**batch, num_items_in_batch=items).loss
        expected.backward()
        expected_grads = gradients(model)
        loss = fused(batch, items, torch.autocast("cpu", enabled=False))
        loss.backward()
        grads = gradients(model)
    assert float(expected) > 5.0  # a real loss: builtin:tiny on random tokens
    assert torch.allclose(loss, expected, rtol=1e-5, atol=0)
    assert set(grads) == set(expected_grads) and len(grads) == 4 * 2 * 2  # layers x (q, v) x (A, B)
    for name, grad in grads.items():
        assert float(expected_grads[name].abs().max()) > 0, name
        assert torch.allclose(grad, expected_grads[name], rtol=1e-4, atol=1e-7), name


def test_under_bf16_autocast_it_stays_within_rounding_of_the_models_own_loss(tiny_base: Path) -> None:
    model = lora(tiny_base, ["q_proj", "v_proj"])
    fused = headloss.head_loss_for(model)
    assert fused is not None
    batch = packed(seed=1)
    items = int((batch["labels"][:, 1:] != data.IGNORE).sum())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        expected = model(**batch, num_items_in_batch=items).loss
    loss = fused(batch, items, torch.autocast("cpu", dtype=torch.bfloat16))
    fp32 = fused(batch, items, torch.autocast("cpu", enabled=False))
    assert loss.dtype == torch.float32
    assert abs(float(loss) - float(expected)) < 1e-3 * float(expected)
    assert float(loss) != float(fp32)  # autocast did reach the decoder and the head


def test_models_it_cannot_fuse_keep_their_own_forward(tiny_base: Path, tiny_gpt2_base: Path) -> None:
    assert headloss.head_loss_for(lora(tiny_gpt2_base, ["c_attn"])) is None  # not an allow-listed forward
    assert headloss.head_loss_for(lora(tiny_base, ["q_proj", "lm_head"])) is None  # a LoRA head
    trained_head = lora(tiny_base, ["q_proj"])
    trained_head.get_base_model().lm_head.weight.requires_grad_(True)
    assert headloss.head_loss_for(trained_head) is None


@pytest.mark.slow
def test_an_update_trains_the_same_adapter_fused_or_not(
    tiny_base: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []
    fuse = headloss.linear_cross_entropy

    def counted(*args: Any) -> torch.Tensor:
        calls.append(1)
        return fuse(*args)

    monkeypatch.setattr(headloss, "linear_cross_entropy", counted)
    adapters, losses = {}, {}
    for name, types in (("own", frozenset()), ("fused", headloss.FUSABLE_MODEL_TYPES)):
        monkeypatch.setattr(headloss, "FUSABLE_MODEL_TYPES", types)
        calls.clear()
        outcome, adapters[name] = train_small_update(tiny_base, tmp_path / name)
        assert (len(calls) > 0) == (name == "fused")
        losses[name] = outcome.final_loss
    assert losses["fused"] == pytest.approx(losses["own"], rel=1e-5)
    for key, tensor in adapters["own"].items():
        assert torch.allclose(adapters["fused"][key], tensor, atol=1e-6, rtol=1e-4), key

"""Bases and LoRA: target modules per architecture, padding without touching the vocabulary, and
continuing a parent adapter (trainable, counted, refused when it does not fit)."""

from pathlib import Path

import pytest
import torch
from peft import LoraConfig, get_peft_model
from safetensors.torch import load_file
from support.tiny_models import save_base, word_tokenizer
from transformers import LlamaConfig, LlamaForCausalLM

from loraledger.schemas.errors import Conflict
from loraledger.schemas.jobs import BaseSource, TrainJob
from loraledger.schemas.specs import LoraSpec, TrainSpec
from loraledger.trainer import models
from loraledger.trainer.recipe import attach_lora

WORDS = ["a", "b", "c", "d", "e", "f"]


def llama(layers: int = 2, hidden: int = 32) -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=64,
        hidden_size=hidden,
        intermediate_size=64,
        num_hidden_layers=layers,
        num_attention_heads=4,
    )
    return LlamaForCausalLM(config)


def job(tmp_path: Path, parent: Path | None, lora: LoraSpec | None = None) -> TrainJob:
    return TrainJob(
        base=BaseSource(model_id="test", path=tmp_path),
        lora=lora or LoraSpec(),
        training=TrainSpec(),
        records=[],
        parent_adapter=parent,
        output_dir=tmp_path / "out",
        checkpoint_dir=tmp_path / "checkpoints",
    )


def save_adapter(model: LlamaForCausalLM, folder: Path, **config: object) -> Path:
    settings: dict[str, object] = {"r": 4, "target_modules": ["q_proj", "v_proj"]}
    adapted = get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", **(settings | config)))
    for name, parameter in adapted.named_parameters():
        if "lora_B" in name:  # non-zero, so that a reload can be told from a fresh init
            torch.nn.init.normal_(parameter)
    adapted.save_pretrained(folder)
    return folder


@pytest.mark.parametrize(
    ("architecture", "expected"), [("llama", ["q_proj", "v_proj"]), ("gpt2", ["c_attn"])]
)
def test_target_modules_follow_the_architecture(
    tmp_path: Path, architecture: str, expected: list[str]
) -> None:
    folder = save_base(tmp_path / architecture, word_tokenizer(WORDS), architecture=architecture)  # type: ignore[arg-type]
    model = models.load_model(BaseSource(model_id=architecture, path=folder), device="cpu")
    assert models.default_target_modules(model) == expected
    adapted, resolved = attach_lora(model, job(tmp_path, None))
    assert resolved.target_modules == expected
    adapted_modules = {
        name.rsplit(".", 1)[-1] for name, module in adapted.named_modules() if hasattr(module, "lora_A")
    }
    assert adapted_modules == set(expected)


def test_pad_reuses_eos_and_never_grows_the_vocabulary(tmp_path: Path) -> None:
    with_eos = save_base(tmp_path / "eos", word_tokenizer(WORDS))
    tokenizer, padding = models.load_tokenizer(BaseSource(model_id="eos", path=with_eos))
    assert tokenizer.pad_token == "</s>" and padding == "pad = eos '</s>'"
    assert len(tokenizer) == 3 + 5 + len(WORDS)

    bare = save_base(tmp_path / "bare", word_tokenizer(WORDS, eos=None))
    tokenizer, padding = models.load_tokenizer(BaseSource(model_id="bare", path=bare))
    assert tokenizer.eos_token is None
    assert tokenizer.pad_token == "<unk>" and tokenizer.pad_token_id == 0
    assert len(tokenizer) == 2 + 5 + len(WORDS)  # unchanged
    assert "no pad or eos token; vocabulary unchanged" in padding


def test_continuing_a_parent_keeps_its_weights_and_makes_them_trainable(tmp_path: Path) -> None:
    parent = save_adapter(llama(), tmp_path / "parent")
    stored = load_file(str(parent / "adapter_model.safetensors"))
    adapted, resolved = attach_lora(llama(), job(tmp_path, parent, LoraSpec(r=4)))
    assert resolved.r == 4 and resolved.target_modules == ["q_proj", "v_proj"]
    trainable = {name: p for name, p in adapted.named_parameters() if p.requires_grad}
    assert sum(p.numel() for p in trainable.values()) == sum(t.numel() for t in stored.values()) > 0
    loaded = dict(adapted.named_parameters())
    for key, tensor in stored.items():
        name = key.replace(".weight", ".default.weight")
        assert torch.equal(loaded[name], tensor), key
        assert loaded[name].requires_grad


def test_a_parent_of_another_shape_is_refused(tmp_path: Path) -> None:
    parent = save_adapter(llama(), tmp_path / "parent")
    with pytest.raises(Conflict, match=r"different shape \(rank 4 -> 8\): pass --fresh"):
        attach_lora(llama(), job(tmp_path, parent, LoraSpec(r=8)))
    with pytest.raises(Conflict, match=r"target modules q_proj,v_proj -> k_proj"):
        attach_lora(llama(), job(tmp_path, parent, LoraSpec(r=4, target_modules=["k_proj"])))


@pytest.mark.parametrize(
    ("parent_model", "config", "message"),
    [
        (lambda: llama(hidden=48), {}, r"does not fit this base model: size mismatch"),
        (lambda: llama(layers=3), {}, r"left 1,024 trainable parameters, its file holds 1,536"),
        (lambda: llama(), {"target_modules": ["gate_proj"], "r": 16}, None),
    ],
    ids=["wider", "deeper", "other-modules"],
)
def test_a_parent_whose_file_does_not_fit_is_refused(
    tmp_path: Path, parent_model: object, config: dict[str, object], message: str | None
) -> None:
    parent = save_adapter(parent_model(), tmp_path / "parent", **config)  # type: ignore[operator]
    if message is None:  # a parent on modules this base lacks
        (parent / "adapter_config.json").write_text(
            (parent / "adapter_config.json").read_text().replace("gate_proj", "w_gate")
        )
        message = r"does not fit this base model: .*w_gate"
    with pytest.raises(Conflict, match=message):
        attach_lora(llama(), job(tmp_path, parent, LoraSpec(r=int(config.get("r", 4)))))  # type: ignore[call-overload]

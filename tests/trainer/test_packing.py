"""Packing: no token lost, no padding, and attention kept inside each document."""

from pathlib import Path
from typing import Any

import pytest
import torch
from support.updates import train_small_update
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, Trainer

from loraledger.trainer import data


def tokenized(length: int, start: int = 0) -> data.Tokenized:
    ids = [(start + i) % 97 + 3 for i in range(length)]
    return data.Tokenized(ids, list(ids))


def test_windows_split_long_documents_without_losing_tokens() -> None:
    windows, extra = data.split_windows([tokenized(1000), tokenized(10)], max_length=256)
    assert extra == 3  # 1000 tokens -> 4 windows of <= 256, sharing one token at each boundary
    assert [len(w) for w in windows] == [256, 256, 256, 235, 10]
    original = tokenized(1000).input_ids
    assert windows[0].input_ids + [t for w in windows[1:4] for t in w.input_ids[1:]] == original
    # every token after the first is a target in exactly one window (a window's first token never is)
    targets = [t for w in windows[:4] for t in w.labels[1:]]
    assert targets == original[1:]


def test_windows_without_labels_are_dropped() -> None:
    prompt_only = data.Tokenized(list(range(3, 303)), [data.IGNORE] * 290 + list(range(10)))
    windows, extra = data.split_windows([prompt_only], max_length=100)
    assert extra == 3  # starts 0, 99, 198, 297
    assert len(windows) == 2  # the two prompt-only windows are left out
    assert [t for w in windows for t in w.labels[1:] if t != data.IGNORE] == list(range(10))


def test_pack_rows_respect_capacity_and_keep_every_sequence() -> None:
    lengths = [500, 30, 250, 250, 120, 7, 512, 300]
    bins = data.pack(lengths, capacity=512, seed=1)
    assert sorted(i for b in bins for i in b) == list(range(len(lengths)))
    assert all(sum(lengths[i] for i in b) <= 512 for b in bins)
    # first-fit-decreasing reaches the lower bound here: total 1969 tokens need 4 bins of 512
    assert len(bins) == 4
    assert data.pack(lengths, capacity=512, seed=1) == bins  # deterministic for a seed


def test_rows_mask_document_boundaries_and_padding() -> None:
    batch = data.collate_rows([[tokenized(4), tokenized(3, start=50)], [tokenized(5)]], pad_id=0)
    assert batch["input_ids"].shape == (2, 7)
    assert batch["position_ids"].tolist() == [[0, 1, 2, 3, 0, 1, 2], [0, 1, 2, 3, 4, 5, 6]]
    assert batch["labels"][0, 0] == data.IGNORE and batch["labels"][0, 4] == data.IGNORE
    assert batch["labels"][1, 5:].tolist() == [data.IGNORE, data.IGNORE]
    assert batch["input_ids"][1, 5:].tolist() == [0, 0]
    assert int((batch["labels"] != data.IGNORE).sum()) == 5 + 4


def test_padding_stays_under_ten_percent_on_mixed_lengths() -> None:
    import random

    rng = random.Random(0)
    windows = [tokenized(rng.choice([rng.randint(20, 200), 512])) for _ in range(400)]
    rows = data.pack([len(w) for w in windows], 512, seed=0)
    batches = data.micro_batches(rows, 8)
    assert data.padding_share(windows, batches) < 0.10
    assert sorted(i for batch in batches for row in batch for i in row) == list(range(400))


@pytest.mark.parametrize("architecture", ["llama", "gpt2"])
def test_packed_logits_equal_separate_logits(architecture: str) -> None:
    torch.manual_seed(0)
    if architecture == "llama":
        config = LlamaConfig(
            vocab_size=128, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4
        )
        model = LlamaForCausalLM(config)
    else:
        model = GPT2LMHeadModel(
            GPT2Config(vocab_size=128, n_embd=32, n_layer=2, n_head=4, bos_token_id=1, eos_token_id=2)
        )
    model.eval()
    first, second, third = tokenized(9), tokenized(6, start=40), tokenized(4, start=7)
    batch = data.collate_rows([[first, second], [third]], pad_id=0)
    with torch.no_grad():
        packed = model(
            input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False
        ).logits
        alone = [
            model(input_ids=torch.tensor([s.input_ids]), use_cache=False).logits[0]
            for s in (first, second, third)
        ]
    assert torch.allclose(packed[0, :9], alone[0], atol=1e-5)
    assert torch.allclose(packed[0, 9:], alone[1], atol=1e-5)
    assert torch.allclose(packed[1, :4], alone[2], atol=1e-5)


@pytest.mark.parametrize("architecture", ["llama", "gpt2"])
def test_packed_training_loss_is_the_token_weighted_mean_of_document_losses(architecture: str) -> None:
    """The loss the Trainer optimises on a packed batch is what training each document alone gives,
    weighted by the tokens each one predicts: packing changes the speed, not the objective."""
    torch.manual_seed(0)
    if architecture == "llama":
        model = LlamaForCausalLM(
            LlamaConfig(
                vocab_size=128,
                hidden_size=32,
                intermediate_size=64,
                num_hidden_layers=2,
                num_attention_heads=4,
            )
        )
    else:
        model = GPT2LMHeadModel(
            GPT2Config(vocab_size=128, n_embd=32, n_layer=2, n_head=4, bos_token_id=1, eos_token_id=2)
        )
    model.eval()
    prompt_masked = data.Tokenized(tokenized(7, start=20).input_ids, [data.IGNORE] * 3 + list(range(10, 14)))
    documents = [tokenized(9), tokenized(6, start=40), tokenized(4, start=7), prompt_masked]
    batch = data.collate_rows([[documents[0], documents[1]], [documents[2], documents[3]]], pad_id=0)
    with torch.no_grad():
        packed = float(model(**batch, use_cache=False).loss)
        losses, weights = [], []
        for document in documents:
            labels = torch.tensor([document.labels])
            alone = model(input_ids=torch.tensor([document.input_ids]), labels=labels, use_cache=False)
            losses.append(float(alone.loss))
            weights.append(int((labels[0, 1:] != data.IGNORE).sum()))
    assert weights == [8, 5, 3, 4]
    expected = sum(loss * weight for loss, weight in zip(losses, weights, strict=True)) / sum(weights)
    assert packed == pytest.approx(expected, abs=1e-5)


def test_micro_batches_group_rows_of_similar_fill() -> None:
    lengths = [512] * 12 + [40, 30, 20, 10]  # twelve full rows, then short leftovers
    rows = data.pack(lengths, 512, seed=3)
    batches = data.batch_rows(rows, lengths, 4, seed=3)
    assert sorted(i for batch in batches for row in batch for i in row) == list(range(len(lengths)))
    windows = [tokenized(length) for length in lengths]
    assert data.padding_share(windows, batches) < data.padding_share(windows, data.micro_batches(rows, 4))
    assert data.batch_rows(rows, lengths, 4, seed=3) == batches  # deterministic for a seed


@pytest.mark.slow
def test_a_micro_batch_computed_in_chunks_trains_the_same_adapter(
    tiny_base: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from loraledger.trainer import recipe

    calls: list[int] = []  # the rows of each forward and backward pass the Trainer makes
    step = Trainer.training_step

    def counted(self: Any, model: Any, inputs: dict[str, Any], num_items_in_batch: Any = None) -> Any:
        calls.append(int(inputs["input_ids"].shape[0]))
        return step(self, model, inputs, num_items_in_batch)

    monkeypatch.setattr(Trainer, "training_step", counted)
    adapters = {}
    for name, chunk_tokens in (("whole", 1 << 20), ("chunked", 64)):
        monkeypatch.setattr(recipe, "CPU_CHUNK_TOKENS", chunk_tokens)
        calls.clear()
        outcome, adapters[name] = train_small_update(tiny_base, tmp_path / name)
        if name == "whole":
            steps, rows = outcome.steps, list(calls)
            assert max(rows) > 1  # micro-batches of several rows: something to cut
        else:
            assert outcome.steps == steps
            assert len(calls) > len(rows) and set(calls) == {1}  # every row of a micro-batch on its own
    assert any(float(tensor.abs().max()) > 0 for key, tensor in adapters["whole"].items() if "lora_B" in key)
    for key, tensor in adapters["whole"].items():
        assert torch.allclose(adapters["chunked"][key], tensor, atol=1e-6, rtol=1e-4), key

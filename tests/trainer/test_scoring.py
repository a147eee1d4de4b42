"""Scoring held-out text: packed, batched strided windows give exactly the NLL of scoring each window
alone, whatever the batch budget (a speed setting, never a change of the number)."""

import math
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from loraledger.schemas.specs import EvalSpec
from loraledger.trainer import data
from loraledger.trainer.evaluate import prepare, score, strided_windows

RECORDS = [
    {"text": "Permission is hereby granted, free of charge, to any person obtaining a copy. " * 6},
    {"text": "def f(x):\n    return x + 1\n"},
    {"text": "THE SOFTWARE IS PROVIDED AS IS, WITHOUT WARRANTY OF ANY KIND. " * 3},
]


def window_by_window(model: torch.nn.Module, tokenizer: object, spec: EvalSpec) -> tuple[float, int]:
    """The reference: every window through the model on its own, summing the NLL of its fresh tokens."""
    total, count = 0.0, 0
    for sequence in data.tokenize(RECORDS, tokenizer):  # type: ignore[arg-type]
        for window in strided_windows(sequence, spec.max_length, spec.stride):
            logits = model(input_ids=torch.tensor([window.input_ids]), use_cache=False).logits[0, :-1]
            targets = torch.tensor(window.labels[1:])
            keep = targets != data.IGNORE
            total += float(torch.nn.functional.cross_entropy(logits[keep], targets[keep], reduction="sum"))
            count += int(keep.sum())
    return total / count, count


@pytest.mark.slow
@pytest.mark.parametrize("batch_tokens", [32, 64, 4096])
def test_batched_scores_equal_window_by_window(tiny_base: Path, batch_tokens: int) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_base)
    tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(tiny_base).eval()
    spec = EvalSpec(max_length=32, stride=16, batch_tokens=batch_tokens)
    with torch.no_grad():
        expected, tokens = window_by_window(model, tokenizer, spec)
        scored = score(model, tokenizer, RECORDS, spec)
    assert tokens > 3 * 32  # long enough that the first record spans several strided windows
    assert scored.tokens == tokens
    assert scored.nll == pytest.approx(expected, rel=1e-5)
    assert scored.perplexity == pytest.approx(math.exp(expected), rel=1e-5)


class WithoutLogitsToKeep(torch.nn.Module):
    """A causal LM whose forward takes no ``logits_to_keep`` (as some older architectures)."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model
        self.calls = 0  # forward passes run

    def forward(self, input_ids: torch.Tensor, position_ids: torch.Tensor, use_cache: bool) -> object:
        self.calls += 1
        return self.model(input_ids=input_ids, position_ids=position_ids, use_cache=use_cache)


class IgnoresLogitsToKeep(WithoutLogitsToKeep):
    """One that takes the argument and gives every position's logits anyway (an older slicing)."""

    def forward(  # type: ignore[override]
        self, input_ids: torch.Tensor, position_ids: torch.Tensor, use_cache: bool, logits_to_keep: object = 0
    ) -> object:
        return super().forward(input_ids, position_ids, use_cache)


@pytest.mark.slow
@pytest.mark.parametrize(("wrapper", "refused_passes"), [(WithoutLogitsToKeep, 0), (IgnoresLogitsToKeep, 1)])
def test_a_model_without_logits_to_keep_scores_the_same(
    tiny_base: Path, wrapper: type[WithoutLogitsToKeep], refused_passes: int
) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_base)
    model = AutoModelForCausalLM.from_pretrained(tiny_base).eval()
    spec = EvalSpec(max_length=32, stride=16, batch_tokens=32)  # a batch per row: several batches
    kept = score(model, tokenizer, RECORDS, spec)
    without = wrapper(model)
    every = score(without, tokenizer, RECORDS, spec)  # type: ignore[arg-type]
    assert every.tokens == kept.tokens > 0
    assert every.nll == pytest.approx(kept.nll, rel=1e-6)
    # One forward pass per batch, plus the first batch's pass whose logits were not the kept ones
    # (a TypeError refuses the argument before any pass): logits_to_keep is not tried again.
    batches = len(prepare(RECORDS, tokenizer, spec))
    assert batches > 1
    assert without.calls == batches + refused_passes


@pytest.mark.slow
@pytest.mark.parametrize("merge", [True, False])
@pytest.mark.parametrize(
    ("builtin", "targets"), [("tiny_base", ("q_proj", "v_proj")), ("tiny_gpt2_base", ("c_attn",))]
)
def test_a_session_scores_each_adapter_as_a_fresh_load_would(
    request: pytest.FixtureRequest, tmp_path: Path, builtin: str, targets: tuple[str, ...], merge: bool
) -> None:
    from support.tiny_models import random_adapter

    from loraledger.trainer.evaluate import ScoringSession, score_sets
    from loraledger.trainer.models import resolve_base

    base: Path = request.getfixturevalue(builtin)
    source = resolve_base(str(base), cache_dir=tmp_path / "cache")
    adapters = {
        "a": random_adapter(base, tmp_path / "a", seed=1, target_modules=targets),
        "b": random_adapter(base, tmp_path / "b", seed=2, target_modules=targets),  # swapped in place
        "wide": random_adapter(base, tmp_path / "wide", seed=3, r=8, target_modules=targets),  # reloads
    }
    sets = {"one": RECORDS[:1], "rest": RECORDS[1:]}
    spec = EvalSpec(max_length=32, stride=16)
    session = ScoringSession(source, sets, spec, device="cpu", merge=merge)
    seen: dict[str, float] = {}
    for name in ["a", "b", "wide", "a"]:  # back to the first: nothing of b or wide stays behind
        session.use(adapters[name])
        fresh = score_sets(source, adapters[name], sets, spec, device="cpu")
        for label in sets:
            assert session.score(label).nll == pytest.approx(fresh[label].nll, rel=1e-5), (name, label)
        seen[name] = fresh["one"].nll
    assert len(set(seen.values())) == 3  # three different adapters: the comparison can fail

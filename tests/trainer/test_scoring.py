"""Scoring held-out text: packed, batched strided windows give exactly the NLL of scoring each window
alone, whatever the batch budget (a speed setting, never a change of the number)."""

import math
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from loraledger.schemas.specs import EvalSpec
from loraledger.trainer import data
from loraledger.trainer.evaluate import score, strided_windows

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

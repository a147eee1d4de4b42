"""Scoring held-out text: mean token negative log-likelihood and perplexity.

Long texts are scored with strided windows (each token once, with up to ``max_length - stride`` tokens
of context before it), and the windows are packed and flattened like training batches, so a suite of
eval sets costs a small fraction of a training run.
"""

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from peft import PeftModel
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from loraledger.schemas.jobs import BaseSource, EvalScore
from loraledger.schemas.specs import EvalSpec
from loraledger.trainer import data, models


def load_for_eval(
    base: BaseSource, adapter: Path | None, *, quantize: str = "none"
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The base model, with an adapter applied when given, in eval mode."""
    device = models.pick_device()
    dtype = models.compute_dtype("auto", device)
    tokenizer, _ = models.load_tokenizer(base)  # never changes the vocabulary
    model = models.load_model(base, quantize=quantize, dtype=dtype, device=device)
    if adapter is not None:
        model = PeftModel.from_pretrained(model, str(adapter), is_trainable=False)
    model.eval()
    return model, tokenizer


def strided_windows(sequence: data.Tokenized, max_length: int, stride: int) -> list[data.Tokenized]:
    """Windows covering the sequence; in each, only tokens not scored by an earlier window keep labels."""
    windows = []
    scored_until = 0
    for begin in range(0, len(sequence), stride):
        end = min(begin + max_length, len(sequence))
        labels = list(sequence.labels[begin:end])
        fresh_from = scored_until - begin
        labels[:fresh_from] = [data.IGNORE] * max(fresh_from, 0)
        windows.append(data.Tokenized(sequence.input_ids[begin:end], labels))
        scored_until = end
        if end == len(sequence):
            break
    return windows


@torch.no_grad()
def score(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    records: Sequence[dict[str, Any]],
    spec: EvalSpec,
    *,
    text_field: str = "text",
) -> EvalScore:
    sequences = data.tokenize(records, tokenizer, text_field=text_field)
    windows = [w for s in sequences for w in strided_windows(s, spec.max_length, spec.stride)]
    device = next(model.parameters()).device
    total_nll, total_tokens = 0.0, 0
    rows = data.pack([len(w) for w in windows], spec.max_length, seed=0)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    for group in data.micro_batches(rows, max(1, spec.batch_tokens // spec.max_length)):
        batch = {
            k: v.to(device)
            for k, v in data.collate_rows([[windows[i] for i in row] for row in group], pad_id).items()
        }
        logits = model(
            input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False
        ).logits
        targets = batch["labels"][:, 1:]
        # (positions, vocabulary) rows: the softmax runs over contiguous memory. A transposed
        # (batch, vocabulary, positions) view scored the same sets 20% slower on CPU (benchmarks/).
        losses = torch.nn.functional.cross_entropy(
            logits[:, :-1].float().reshape(-1, logits.shape[-1]),
            targets.reshape(-1),
            ignore_index=data.IGNORE,
            reduction="sum",
        )
        total_nll += float(losses)
        total_tokens += int((targets != data.IGNORE).sum())
    if total_tokens == 0:
        return EvalScore(nll=float("nan"), perplexity=float("nan"), tokens=0)
    nll = total_nll / total_tokens
    return EvalScore(nll=nll, perplexity=math.exp(min(nll, 700.0)), tokens=total_tokens)


def score_sets(
    base: BaseSource,
    adapter: Path | None,
    sets: Mapping[str, Sequence[dict[str, Any]]],
    spec: EvalSpec,
    *,
    quantize: str = "none",
    text_field: str = "text",
) -> dict[str, EvalScore]:
    """Load once, score every set."""
    model, tokenizer = load_for_eval(base, adapter, quantize=quantize)
    return {
        label: score(model, tokenizer, records, spec, text_field=text_field)
        for label, records in sets.items()
    }

"""Scoring held-out text: mean token negative log-likelihood and perplexity.

Long texts are scored with strided windows (each token once, with up to ``max_length - stride`` tokens
of context before it), and the windows are packed and flattened like training batches, so a suite of
eval sets costs a small fraction of a training run.

How a model is loaded for scoring changes its numbers (a 4-bit base scores differently from the same
weights in fp32, bf16 from fp32, a 64-token window from a 512-token one), so every score is recorded
with its *setting*, ``scoring_setting()``: scores are compared only within one setting.
"""

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from peft import PeftModel
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from loraledger.schemas.errors import InvalidInput
from loraledger.schemas.jobs import BaseSource, EvalScore
from loraledger.schemas.specs import EvalSpec
from loraledger.trainer import data, models

# How each quantization stores the base weights, in a setting's words (None: as the compute dtype).
WEIGHT_FORMATS: dict[str, str | None] = {"none": None, "4bit": "nf4", "8bit": "int8"}
DTYPE_NAMES = {torch.bfloat16: "bf16", torch.float16: "fp16", torch.float32: "fp32"}


def eval_dtype(device: str) -> torch.dtype:
    """The compute dtype of scoring on ``device``: bf16 on a GPU that has it, else fp32. The one place
    that choice is made, for loading (``load_for_eval``) and for naming (``scoring_setting``) alike."""
    return models.compute_dtype("auto", device)


def scoring_setting(quantize: str, spec: EvalSpec, device: str, *, text_field: str = "text") -> str:
    """Everything about scoring that changes the numbers, in a few words, without loading a model:
    weights format / compute dtype, then window / stride, e.g. ``fp32 w512/s256``,
    ``nf4/bf16 w512/s256``, ``int8/fp32 w512/s256``; `` field=NAME`` is added when the text is read
    from another field than ``text``. (The batch size only regroups the same windows.)"""
    if quantize not in WEIGHT_FORMATS:
        raise InvalidInput(f"unknown quantization {quantize!r}: use 4bit, 8bit or none")
    dtype = DTYPE_NAMES[eval_dtype(device)]
    weights = WEIGHT_FORMATS[quantize]
    setting = f"{weights}/{dtype}" if weights else dtype
    setting += f" w{spec.max_length}/s{spec.stride}"
    if text_field != "text":
        setting += f" field={text_field}"
    return setting


def load_for_eval(
    base: BaseSource, adapter: Path | None, *, quantize: str = "none", device: str | None = None
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The base model, with an adapter applied when given, in eval mode."""
    device = device or models.pick_device()
    dtype = eval_dtype(device)
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
    device: str | None = None,
) -> dict[str, EvalScore]:
    """Load once, score every set: in the setting ``scoring_setting(quantize, spec, device,
    text_field=text_field)`` names."""
    model, tokenizer = load_for_eval(base, adapter, quantize=quantize, device=device)
    return {
        label: score(model, tokenizer, records, spec, text_field=text_field)
        for label, records in sets.items()
    }

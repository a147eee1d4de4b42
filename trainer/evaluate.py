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


Batch = dict[str, torch.Tensor]


def prepare(
    records: Sequence[dict[str, Any]],
    tokenizer: PreTrainedTokenizerBase,
    spec: EvalSpec,
    *,
    text_field: str = "text",
) -> list[Batch]:
    """The scoring batches of a set (strided windows, packed and collated): tokenized once, so that
    several adapters can be scored on them (``ScoringSession``)."""
    sequences = data.tokenize(records, tokenizer, text_field=text_field)
    windows = [w for s in sequences for w in strided_windows(s, spec.max_length, spec.stride)]
    rows = data.pack([len(w) for w in windows], spec.max_length, seed=0)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    return [
        data.collate_rows([[windows[i] for i in row] for row in group], pad_id)
        for group in data.micro_batches(rows, max(1, spec.batch_tokens // spec.max_length))
    ]


@torch.no_grad()
def score_batches(model: PreTrainedModel, batches: Sequence[Batch]) -> EvalScore:
    """Mean token NLL over prepared batches. Logits are computed only where a next token is scored
    (``logits_to_keep`` as a boolean mask): the strided windows' context halves hold none, and the
    vocabulary projection and its softmax are a large part of a small model's forward pass."""
    device = next(model.parameters()).device
    total_nll, total_tokens = 0.0, 0
    masks_kept = True  # until the model shows that it takes no boolean logits_to_keep
    for cpu_batch in batches:
        batch = {k: v.to(device) for k, v in cpu_batch.items()}
        targets = batch["labels"][:, 1:]
        keep = torch.zeros_like(batch["labels"], dtype=torch.bool)
        keep[:, :-1] = targets != data.IGNORE
        logits, masks_kept = _kept_logits(model, batch, keep, try_mask=masks_kept)
        # (positions, vocabulary) rows: the softmax runs over contiguous memory. A transposed
        # (batch, vocabulary, positions) view scored the same sets 20% slower on CPU (benchmarks/).
        losses = torch.nn.functional.cross_entropy(logits.float(), targets[keep[:, :-1]], reduction="sum")
        total_nll += float(losses)
        total_tokens += int(keep.sum())
    if total_tokens == 0:
        return EvalScore(nll=float("nan"), perplexity=float("nan"), tokens=0)
    nll = total_nll / total_tokens
    return EvalScore(nll=nll, perplexity=math.exp(min(nll, 700.0)), tokens=total_tokens)


def _kept_logits(
    model: PreTrainedModel, batch: Batch, keep: torch.Tensor, *, try_mask: bool
) -> tuple[torch.Tensor, bool]:
    """(kept positions, vocabulary) logits, and whether the model took ``keep`` as a boolean
    ``logits_to_keep``. A model that does not (an older slicing) gives every position's logits, and
    the kept ones are taken here; with ``try_mask`` False it is not asked again, so such a model runs
    one forward pass per batch, not two."""
    inputs = {"input_ids": batch["input_ids"], "position_ids": batch["position_ids"], "use_cache": False}
    if try_mask:
        try:
            logits: torch.Tensor = model(**inputs, logits_to_keep=keep).logits
            if logits.dim() == 2 and logits.shape[0] == int(keep.sum()):
                return logits, True
        except (TypeError, IndexError, RuntimeError):
            pass
    every: torch.Tensor = model(**inputs).logits
    return every[keep], False


def score(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    records: Sequence[dict[str, Any]],
    spec: EvalSpec,
    *,
    text_field: str = "text",
) -> EvalScore:
    return score_batches(model, prepare(records, tokenizer, spec, text_field=text_field))


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


class ScoringSession:
    """One base model, loaded once, scoring adapters of one shape one after another on sets tokenized
    once: what a search over many candidates of one update needs (workflows/retention.py).

    ``use(folder)`` puts an adapter's tensors into the loaded model in place (peft's
    ``set_peft_model_state_dict``); an adapter of another shape (rank, targets) reloads. On an
    unquantized fp32 base the adapter is merged into the weights for scoring (one matmul per layer
    instead of three: a fifth less time on CPU), and unmerged before the next one; in bf16 a merge
    would round the small update into the large weights, and a quantized base has no exact merge, so
    the adapter is scored unmerged there. The scores are those of ``score_sets`` in the same setting.
    """

    def __init__(
        self,
        base: BaseSource,
        sets: Mapping[str, Sequence[dict[str, Any]]],
        spec: EvalSpec,
        *,
        quantize: str = "none",
        text_field: str = "text",
        device: str | None = None,
        merge: bool | None = None,
    ) -> None:
        self.base, self.sets, self.spec = base, sets, spec
        self.quantize, self.text_field = quantize, text_field
        self.device = device or models.pick_device()
        exact_merge = quantize == "none" and eval_dtype(self.device) == torch.float32
        if merge and not exact_merge:
            raise ValueError("an adapter is merged for scoring on an unquantized fp32 base only")
        self._merge = exact_merge if merge is None else merge
        self._model: PeftModel | None = None
        self._tokenizer: PreTrainedTokenizerBase | None = None
        self._config: dict[str, Any] | None = None
        self._adapter: Path | None = None
        self._batches: dict[str, list[Batch]] = {}

    def use(self, adapter: Path) -> None:
        """Score ``adapter`` (a saved PEFT LoRA folder) from now on."""
        import json

        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        if adapter == self._adapter:
            return
        config = json.loads((adapter / "adapter_config.json").read_text())
        if self._model is None or config != self._config:
            model, self._tokenizer = load_for_eval(
                self.base, adapter, quantize=self.quantize, device=self.device
            )
            assert isinstance(model, PeftModel)
            self._model = model
        else:
            if self._merge:
                self._model.unmerge_adapter()
            weights = load_file(str(adapter / "adapter_model.safetensors"), device=self.device)
            result = set_peft_model_state_dict(self._model, weights)
            if result.unexpected_keys:
                raise InvalidInput(
                    f"{adapter}: tensors the loaded adapter has no place for: {result.unexpected_keys[:3]}"
                )
        if self._merge:
            self._model.merge_adapter()
        self._config, self._adapter = config, adapter

    def score(self, label: str) -> EvalScore:
        """The adapter in use, on the set ``label``."""
        if self._model is None or self._tokenizer is None:
            raise RuntimeError("ScoringSession.score before use()")
        if label not in self._batches:
            self._batches[label] = prepare(
                self.sets[label], self._tokenizer, self.spec, text_field=self.text_field
            )
        return score_batches(self._model, self._batches[label])

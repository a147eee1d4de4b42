"""Attention over packed rows, one document at a time (the CPU's answer to FlashAttention's varlen).

A packed row holds several documents, kept apart by ``position_ids`` restarting at each one
(trainer/data.py). transformers turns that into a block-diagonal mask, and SDPA on CPU computes every
query-key pair of the row under it: ``width**2`` per row whatever the documents' lengths. For rows of
512 tokens holding five ~100-token documents, that is ten times the pairs the documents need
(profiled: attention was a third of a training step on ``builtin:tiny``). Here each document is
gathered into a batch of its own length and attended with ``is_causal=True`` and no mask, then
scattered back into the row: the same attention, with the work the documents need.

Documents are batched by length (a bucket per power of two), so a 512-token window and a 60-token
tail are not padded to the same length. Padding at the end of a document is invisible to it under a
causal mask, and its outputs are dropped; the gather repeats the document's last token there rather
than reading another document.

Registered under ``loraledger_packed`` and switched on by the recipe for its own training model only
(``packed_attention``): the one caller whose batches are packed by ``position_ids`` with no padding
mask. Anything it cannot do exactly (no ``position_ids``, a KV cache, inference, any attention argument it
does not know: sliding windows, soft-capping, sinks, a position bias) goes to transformers' own SDPA
function with the mask it was given (the mask is always built, for that reason).
"""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from transformers import AttentionInterface, PreTrainedModel
from transformers.integrations.sdpa_attention import repeat_kv, sdpa_attention_forward
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface

NAME = "loraledger_packed"
# Keyword arguments a training forward passes down to attention (transformers' TransformersKwargs) that
# do not change what attention computes. Any other one set (attention sinks, sliding windows, soft-capping,
# a position bias, a cache position...) may change it: transformers' own function handles those.
_NEUTRAL = {"position_ids", "num_items_in_batch", "use_cache", "output_attentions", "output_hidden_states"}
_SMALLEST_BUCKET = 32  # shorter documents share one bucket: below this, padding costs nothing


@dataclass(frozen=True)
class _Bucket:
    index: torch.Tensor  # [documents, length]: flat token positions, the last one repeated as padding
    valid: torch.Tensor  # [documents, length]: which of them are the document's own tokens


@dataclass(frozen=True)
class _Layout:
    """Where each document of a batch lies: built once per batch, used by every layer."""

    buckets: list[_Bucket]  # empty when every row is one document: plain causal rows, nothing gathered
    order: torch.Tensor | None  # per token in row order, its index among the gathered outputs (None: same)


def _layout(position_ids: torch.Tensor) -> _Layout:
    # A document starts where positions do not continue (transformers' find_packed_sequence_indices),
    # and at the start of every row.
    rows, width = position_ids.shape
    continues = torch.ones_like(position_ids, dtype=torch.bool)
    continues[:, 1:] = position_ids[:, 1:] == position_ids[:, :-1] + 1
    continues[:, 0] = False
    starts = (~continues).reshape(-1).nonzero().squeeze(1)
    if len(starts) == rows:  # one document per row (long documents' windows): no copy needed
        return _Layout([], None)
    ends = torch.cat([starts[1:], starts.new_tensor([rows * width])])
    lengths = ends - starts
    sizes = torch.clamp(lengths, min=_SMALLEST_BUCKET)
    bucket_of = torch.ceil(torch.log2(sizes.double())).long()  # power-of-two buckets
    buckets, gathered = [], []
    for bucket in torch.unique(bucket_of).tolist():
        chosen = (bucket_of == bucket).nonzero().squeeze(1)
        span = int(lengths[chosen].max())
        offsets = torch.arange(span, device=position_ids.device)
        index = starts[chosen, None] + offsets
        valid = offsets < lengths[chosen, None]
        index = torch.minimum(index, ends[chosen, None] - 1)
        buckets.append(_Bucket(index, valid))
        gathered.append(index[valid])
    positions = torch.cat(gathered)
    in_order = len(buckets) == 1  # one bucket: documents come out in the row order they went in
    return _Layout(buckets, None if in_order else torch.argsort(positions))


class _LayoutCache:
    """The layout of the batch being computed: every layer of a forward pass gets the same
    ``position_ids`` tensor, so it is derived once per batch."""

    def __init__(self) -> None:
        self.key: torch.Tensor | None = None
        self.layout: _Layout | None = None

    def get(self, position_ids: torch.Tensor) -> _Layout:
        if self.key is not position_ids or self.layout is None:
            self.key, self.layout = position_ids, _layout(position_ids)
        return self.layout


_cache = _LayoutCache()


def packed_attention_forward(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """``query`` [rows, heads, width, dim] -> [rows, width, heads, dim], as transformers' SDPA function."""
    position_ids = kwargs.get("position_ids")
    rows, heads, width, _ = query.shape
    exact = (
        module.training
        and isinstance(position_ids, torch.Tensor)
        and position_ids.shape == (rows, width)
        and key.shape[2] == width
        and getattr(module, "is_causal", True)
        and all(setting is None for name, setting in kwargs.items() if name not in _NEUTRAL)
        and not kwargs.get("output_attentions")
    )
    if not exact:
        output: torch.Tensor = sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout, scaling, **kwargs
        )[0]
        return output, None
    assert isinstance(position_ids, torch.Tensor)  # for mypy: checked in ``exact``
    groups = getattr(module, "num_key_value_groups", 1)
    key, value = repeat_kv(key, groups), repeat_kv(value, groups)
    layout = _cache.get(position_ids)
    if not layout.buckets:
        whole = torch.nn.functional.scaled_dot_product_attention(
            query, key, value, dropout_p=dropout, scale=scaling, is_causal=True
        )
        return whole.transpose(1, 2).contiguous(), None
    # [rows * width, heads, dim]: one token per line, so a document is a run of lines
    flat = [t.transpose(1, 2).reshape(rows * width, heads, -1) for t in (query, key, value)]
    outputs = []
    for bucket in layout.buckets:
        q, k, v = (t[bucket.index].transpose(1, 2) for t in flat)  # [documents, heads, length, dim]
        out = torch.nn.functional.scaled_dot_product_attention(
            q, k, v, dropout_p=dropout, scale=scaling, is_causal=True
        )
        outputs.append(out.transpose(1, 2)[bucket.valid])  # [tokens, heads, dim]
    joined = outputs[0] if len(outputs) == 1 else torch.cat(outputs)
    if layout.order is not None:
        joined = joined[layout.order]
    return joined.reshape(rows, width, heads, -1), None


def _register() -> None:
    if NAME not in AttentionInterface._global_mapping:
        AttentionInterface.register(NAME, packed_attention_forward)
        # The mask is SDPA's (block-diagonal from position_ids): the fallback path needs it.
        AttentionMaskInterface.register(NAME, ALL_MASK_ATTENTION_FUNCTIONS["sdpa"])


@contextmanager
def packed_attention(model: PreTrainedModel) -> Iterator[bool]:
    """Attend document by document while training ``model`` on packed rows, if it uses SDPA on CPU;
    yields whether it does. The model's own implementation is restored on the way out."""
    previous = model.config._attn_implementation
    device = next(model.parameters()).device.type
    if previous != "sdpa" or device != "cpu" or not model._can_set_attn_implementation():
        yield False
        return
    _register()
    model.set_attn_implementation(NAME)
    try:
        yield True
    finally:
        model.set_attn_implementation(previous)
        _cache.key = _cache.layout = None

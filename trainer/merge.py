"""Merging an adapter into its base, verified: the merged model must give the logits of base + adapter.

The base is loaded at full precision (fp32) whatever the adapter was trained on: ``merge_and_unload``
on a 4-bit or 8-bit base dequantizes, adds and re-quantizes, which loses most of a small update (peft
#2321). A LoRA trained on a quantized base was trained against slightly different weights, but its
update is the same matrices, and publishing wants it added to the real weights.

    load base fp32 + adapter -> logits on a fixed probe batch -> merge_and_unload -> logits again
    -> cast to the asked dtype -> save model + tokenizer (safetensors) -> reload, logits a third time

The probe batch is seeded random token ids: a merge is linear algebra, and any input shows a wrong one.
"""

import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from loraledger.schemas.errors import Conflict, InvalidInput
from loraledger.schemas.jobs import BaseSource
from loraledger.trainer import models

if TYPE_CHECKING:
    from transformers import PreTrainedModel

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
# Largest logit difference accepted between an fp32 merge and base + adapter, relative to the largest
# logit (at least 1): reordered fp32 sums differ by about 1e-6 on the tiny models and by a few 1e-4 on
# a 30-layer model whose logits reach 20 (SmolLM2-135M); a wrong merge (scaling, transposition, a lost
# layer) differs by far more.
MERGE_TOLERANCE = 1e-4


def merge_tolerance(expected: torch.Tensor) -> float:
    """The absolute logit difference a correct fp32 merge stays within, on these logits."""
    return MERGE_TOLERANCE * max(1.0, float(expected.abs().max()))


PROBE_SEED = 0
PROBE_ROWS = 4
PROBE_LENGTH = 64


@dataclass(frozen=True)
class MergeOutcome:
    output_dir: Path
    dtype: str
    max_logit_diff: float  # the fp32 merge against base + adapter: what ``tolerance`` bounds
    saved_max_logit_diff: float  # the saved files, reloaded in ``dtype``, against base + adapter
    probe: str
    files: list[str]
    tolerance: float = MERGE_TOLERANCE  # merge_tolerance() of the probe's logits


def load_full_precision(base: BaseSource) -> "PreTrainedModel":
    """The base model in fp32, unquantized, in eval mode."""
    model = models.load_model(base, quantize="none", dtype=torch.float32)
    model.eval()
    return model


def probe_batch(model: "PreTrainedModel") -> torch.Tensor:
    """Seeded random token ids, the same for every run on the same base."""
    config = model.config
    positions = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
    generator = torch.Generator().manual_seed(PROBE_SEED)
    ids = torch.randint(
        0,
        models.vocabulary_size(model),
        (PROBE_ROWS, min(PROBE_LENGTH, int(positions or PROBE_LENGTH))),
        generator=generator,
    )
    return ids.to(next(model.parameters()).device)


def describe_probe(ids: torch.Tensor) -> str:
    return f"{ids.shape[0]}x{ids.shape[1]} random token ids, seed {PROBE_SEED}"


@torch.no_grad()
def logits(model: torch.nn.Module, ids: torch.Tensor) -> torch.Tensor:
    output: torch.Tensor = model(input_ids=ids, use_cache=False).logits.float()
    return output


def merge_adapter(
    base: BaseSource, adapter_dir: Path, output_dir: Path, *, dtype: str = "fp32"
) -> MergeOutcome:
    """Merge the adapter into a full-precision copy of the base and save it to ``output_dir``."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if dtype not in DTYPES:
        raise InvalidInput(f"unknown dtype {dtype!r}: use {', '.join(DTYPES)}")
    if output_dir.exists() and any(output_dir.iterdir()):
        raise InvalidInput(f"{output_dir} exists and is not empty: choose another --out or remove it")

    model = PeftModel.from_pretrained(load_full_precision(base), str(adapter_dir), is_trainable=False)
    model.eval()
    ids = probe_batch(model)
    expected = logits(model, ids)
    merged = model.merge_and_unload()
    merge_diff = float((logits(merged, ids) - expected).abs().max())
    tolerance = merge_tolerance(expected)
    if not merge_diff <= tolerance:
        raise Conflict(
            f"the merged model's logits differ from base + adapter by {merge_diff:.3g} (more than "
            f"{tolerance:.3g}): refusing to save it"
        )

    # Written beside the destination and renamed at the end: a failed merge leaves no half folder.
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    partial = output_dir.parent / f".{output_dir.name}.partial-{uuid.uuid4().hex[:8]}"
    try:
        merged = merged.to(DTYPES[dtype])
        merged.config.use_cache = True  # turned off for packed training; generation wants it
        merged.save_pretrained(str(partial))
        # The base's tokenizer as it is: the pad token our loaders set is not part of the model.
        AutoTokenizer.from_pretrained(base.path).save_pretrained(str(partial))
        del merged, model
        reloaded = AutoModelForCausalLM.from_pretrained(str(partial), dtype=DTYPES[dtype])
        reloaded.to(ids.device).eval()
        saved_diff = float((logits(reloaded, ids) - expected).abs().max())
        if dtype == "fp32" and not saved_diff <= tolerance:
            raise Conflict(
                f"the saved merged model's logits differ from base + adapter by {saved_diff:.3g}: "
                "refusing to keep it"
            )
        if output_dir.exists():
            output_dir.rmdir()  # empty, checked above
        partial.rename(output_dir)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return MergeOutcome(
        output_dir=output_dir,
        dtype=dtype,
        max_logit_diff=merge_diff,
        saved_max_logit_diff=saved_diff,
        probe=describe_probe(ids),
        files=sorted(p.relative_to(output_dir).as_posix() for p in output_dir.rglob("*") if p.is_file()),
        tolerance=tolerance,
    )


def check_fits(base: BaseSource, adapter_dir: Path) -> int:
    """Load the adapter on the base and make sure every tensor of its file found its module; returns
    the adapter's parameter count. peft drops tensors that match nothing with a mere warning."""
    import math

    from peft import PeftModel
    from safetensors import safe_open

    from loraledger.trainer.adapterfiles import WEIGHTS_FILE

    with safe_open(str(adapter_dir / WEIGHTS_FILE), framework="pt") as handle:
        stored = int(sum(math.prod(handle.get_slice(key).get_shape()) for key in handle.keys()))  # noqa: SIM118
    try:
        model = PeftModel.from_pretrained(load_full_precision(base), str(adapter_dir), is_trainable=False)
    except (RuntimeError, ValueError, KeyError) as exc:  # size mismatch, target modules not found
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        fallback = lines[0] if lines else type(exc).__name__
        reason = next((line for line in lines if "mismatch" in line or "not found" in line), fallback)
        raise Conflict(f"the adapter does not fit {base.model_id}: {reason}") from None
    loaded = int(sum(p.numel() for name, p in model.named_parameters() if "lora_" in name))
    if loaded != stored:
        raise Conflict(
            f"the adapter does not fit {base.model_id}: its file holds {stored:,} parameters, "
            f"{loaded:,} found a module to attach to"
        )
    return stored

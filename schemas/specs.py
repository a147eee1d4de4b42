"""What a user asks the trainer for: LoRA shape, optimisation, data handling, precision.

Every field documents itself (the text is also the ``--help`` text of the matching flag and the
description in the exported JSON Schema) and the validators reject combinations that cannot work with a
message that says what to change. The resolved spec is saved beside each adapter and in the registry.
"""

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Quantize = Literal["none", "4bit", "8bit"]
Precision = Literal["auto", "bf16", "fp16", "fp32"]
Scheduler = Literal["linear", "cosine", "constant", "constant_with_warmup"]


class StrictModel(BaseModel):
    """User-facing specs: unknown keys are typos, and a typo must not be silently ignored."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class LoraSpec(StrictModel):
    """Shape of the low-rank update (peft ``LoraConfig``)."""

    r: int = Field(16, ge=1, le=1024, description="LoRA rank: size of the low-rank update matrices.")
    alpha: float = Field(32, gt=0, description="LoRA alpha: the update is scaled by alpha / r.")
    dropout: float = Field(0.05, ge=0, lt=1, description="Dropout applied to the LoRA input.")
    target_modules: list[str] | None = Field(
        None,
        description="Module names to adapt; unset means the architecture's usual set "
        "(q_proj+v_proj for Llama/Mistral/Qwen, c_attn for GPT-2).",
    )

    @model_validator(mode="after")
    def _targets_not_empty(self) -> "LoraSpec":
        if self.target_modules is not None and not self.target_modules:
            raise ValueError("target_modules is an empty list; omit it to detect them from the architecture")
        return self


class TrainSpec(StrictModel):
    """Optimisation, batching and precision for one update."""

    learning_rate: float = Field(2e-4, gt=0, lt=1, description="Peak learning rate (AdamW).")
    epochs: float = Field(1.0, gt=0, le=100, description="Passes over the training data (fractions allowed).")
    max_length: int = Field(
        512,
        ge=16,
        le=131072,
        description="Longest sequence fed to the model; longer documents are split into windows of "
        "this many tokens, never truncated.",
    )
    batch_tokens: int = Field(
        4096,
        ge=16,
        description="Token budget of one micro-batch per device: batch_tokens / max_length rows, "
        "each packed with whole windows up to max_length tokens.",
    )
    gradient_accumulation: int = Field(1, ge=1, le=1024, description="Micro-batches per optimizer step.")
    warmup: float = Field(
        0.05,
        ge=0,
        description="Learning-rate warm-up: a fraction of all steps when below 1, else a number of steps. "
        "Re-warming at each update helps continual training.",
    )
    scheduler: Scheduler = Field("linear", description="Learning-rate schedule after warm-up.")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")
    max_grad_norm: float = Field(1.0, gt=0, description="Gradient clipping norm.")
    seed: int = Field(42, ge=0, description="Seed for initialisation, shuffling and dropout.")
    quantize: Quantize = Field(
        "none",
        description="Load the base in 4-bit NF4 (QLoRA, double quantization) or 8-bit via bitsandbytes.",
    )
    precision: Precision = Field(
        "auto",
        description="Compute precision: auto is bf16 on a GPU that supports it and bf16 autocast on a CPU "
        "with native bf16 (AVX512-BF16, AMX, Arm BF16), else fp32.",
    )
    gradient_checkpointing: bool = Field(False, description="Recompute activations to save memory.")
    replay: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="Share of the training rows drawn from the datasets of earlier versions in the lineage.",
    )
    text_field: str = Field("text", min_length=1, description="Field holding plain text in each record.")
    chat_template: str | None = Field(
        None,
        description="Jinja chat template (or a file holding one) for 'messages' rows; overrides the "
        "tokenizer's own.",
    )
    checkpoint_steps: int = Field(
        50, ge=1, description="Save a resumable checkpoint every this many optimizer steps."
    )

    @model_validator(mode="after")
    def _budget_fits_a_window(self) -> "TrainSpec":
        if self.batch_tokens < self.max_length:
            raise ValueError(
                f"batch_tokens ({self.batch_tokens}) is smaller than max_length ({self.max_length}); "
                "raise batch_tokens or lower max_length so one window fits in a micro-batch"
            )
        if self.warmup >= 1 and self.warmup != int(self.warmup):
            raise ValueError("warmup above 1 is a number of steps and must be whole")
        return self


class GateSpec(StrictModel):
    """When a new version may become ``current``."""

    max_regression: float = Field(
        0.05,
        ge=0,
        description="Largest allowed relative increase of mean NLL on retention sets and earlier "
        "updates' eval sets (0.05 = 5%).",
    )


class EvalSpec(StrictModel):
    """How held-out text is scored."""

    max_length: int = Field(512, ge=16, description="Window length for scoring long texts.")
    stride: int = Field(
        256,
        ge=1,
        description="Step between windows; each token is scored once, with up to "
        "max_length - stride tokens of left context.",
    )
    # 2048, not more: on CPU a bigger batch's logits (rows x max_length x vocabulary floats) outgrow the
    # caches; 8192 scored the same sets 1.25x slower here, with the same NLL (benchmarks/eval_cost.py).
    batch_tokens: int = Field(2048, ge=16, description="Token budget of one scoring batch.")

    @model_validator(mode="after")
    def _stride_fits(self) -> "EvalSpec":
        if self.stride > self.max_length:
            raise ValueError(f"stride ({self.stride}) must not exceed max_length ({self.max_length})")
        return self


def parse_share(value: Any) -> Any:
    """``5%``, ``"0.05"`` or ``0.05`` -> 0.05: a share as people write it on a command line."""
    if isinstance(value, str):
        text = value.strip()
        try:
            return float(text[:-1]) / 100 if text.endswith("%") else float(text)
        except ValueError:
            raise ValueError(f"{value!r} is not a share: write 5% or 0.05") from None
    return value


class RetentionSpec(StrictModel):
    """A retention budget that training meets by itself (workflows/retention.py, docs/retention.md)."""

    max_forgetting: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="Largest relative NLL rise allowed on every retention set and earlier update (5% or "
        "0.05). An update over it is searched down to one within it: weaker first (no retraining), "
        "then retrained with replay. Unset: no search, the gate alone decides.",
    )
    min_gain_share: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Usefulness floor: a weakened update must keep at least this share of the raw "
        "update's domain gain (NLL drop on its eval split), else replay retraining is tried.",
    )
    bisection_steps: int = Field(
        5, ge=1, le=20, description="Bisection steps over the strength alpha (resolution 1/2^steps)."
    )
    replay_shares: list[float] = Field(
        [0.2, 0.4, 0.6],
        max_length=5,
        description="Replay shares tried in order when no strength keeps a useful share of the gain; "
        "the first within the budget is chosen (at most 5 retrainings).",
    )

    @field_validator("max_forgetting", mode="before")
    @classmethod
    def _percent(cls, value: Any) -> Any:
        return parse_share(value)

    @field_validator("replay_shares")
    @classmethod
    def _shares(cls, value: list[float]) -> list[float]:
        if any(not 0 < share < 1 for share in value):
            raise ValueError("each replay share is between 0 and 1 (exclusive)")
        return value


class Recipe(StrictModel):
    """A training recipe file (``adapters train --config recipe.yaml``); flags override its values."""

    lora: LoraSpec = Field(default_factory=LoraSpec)
    training: TrainSpec = Field(default_factory=TrainSpec)
    eval: EvalSpec = Field(default_factory=EvalSpec)
    retention: RetentionSpec = Field(default_factory=RetentionSpec)

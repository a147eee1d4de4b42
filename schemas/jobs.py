"""What the CLI hands the trainer and what the trainer hands back.

Plain and JSON-serialisable, because a multi-process run passes the job to worker processes as a file.
The trainer never sees the registry: it gets local paths and records, and returns numbers and a folder.
"""

from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from loraledger.schemas.specs import LoraSpec, TrainSpec


class BaseSource(BaseModel):
    """A base model resolved to a local folder."""

    model_id: str = Field(
        description="Canonical id recorded in the registry and written into adapter configs."
    )
    path: Path
    revision: str | None = None
    gguf_file: Path | None = Field(
        None,
        description="The GGUF file the base came from; ``path`` is then its dequantized copy in the cache.",
    )
    source_format: str | None = Field(
        None, description="'GGUF <quantization>' for a GGUF base; None for a model folder."
    )


class TrainJob(BaseModel):
    base: BaseSource
    lora: LoraSpec
    training: TrainSpec
    records: list[dict[str, Any]] = Field(description="Training rows, replay rows included.")
    source_rows: list[int] = Field(
        default_factory=list,
        description="Rows of each data source, in the order their records come: the trainer counts "
        "tokens per source for the registry.",
    )
    replay_rows: int = 0
    parent_adapter: Path | None = Field(None, description="Folder of the adapter to continue from.")
    output_dir: Path
    checkpoint_dir: Path
    resume: bool = False
    allow_pickle: bool = False
    trust_remote_code: bool = False


class DataStats(BaseModel):
    rows: int
    sequences: int = Field(description="Sequences after splitting long documents into windows.")
    windows_split: int = Field(
        description="Extra windows created by splitting documents longer than max_length."
    )
    windows_skipped: int = Field(
        0,
        description="Windows left out because no token in them carries loss (e.g. the middle of a "
        "prompt longer than max_length).",
    )
    tokens: int = Field(description="Tokens fed to the model, every one of them (nothing is truncated).")
    trained_tokens: int = Field(
        description="Tokens that carry loss (completions only for prompt/completion)."
    )
    micro_batches: int
    padding_share: float = Field(description="Padding positions / all computed positions.")
    source_tokens: list[int] = Field(
        default_factory=list, description="Tokens of each data source, in the order of the job's source_rows."
    )


class TrainOutcome(BaseModel):
    adapter_dir: Path
    final_loss: float | None
    steps: int
    seconds: float
    tokens_per_second: float
    data: DataStats
    trainable_parameters: int
    target_modules: list[str]
    lora: LoraSpec
    libraries: dict[str, str]
    padding: str = Field(
        "", description="Which token pads, in words (the vocabulary is never changed for padding)."
    )
    resumed_from: str | None = Field(None, description="Checkpoint folder the run resumed from.")
    resumed_at_step: int | None = Field(None, description="Optimizer step the resumed run started at.")
    peak_rss_mb: float | None = None
    cpu_seconds: float | None = Field(
        None,
        description="CPU time of the training process over the same span as `seconds` (all threads): "
        "on a shared machine, wall time includes waiting for a core; CPU time is what training cost.",
    )
    precision: str = Field(
        "", description="The compute precision the run used, in words (what --precision auto chose)."
    )


class EvalScore(BaseModel):
    nll: float = Field(description="Mean negative log-likelihood per scored token (nats).")
    perplexity: float
    tokens: int

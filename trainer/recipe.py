"""Training one LoRA update, top to bottom: set up -> attach or continue LoRA -> data -> fit -> save.

Read it in one sitting. The recipe takes a ``TrainJob`` (local paths, records, specs) and returns a
``TrainOutcome`` (a saved adapter folder and its numbers); it knows nothing about the registry.
Run under ``accelerate launch`` it trains data-parallel; only the main process saves.
"""

import json
import logging
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from peft import LoraConfig, PeftModel, get_peft_model, prepare_model_for_kbit_training
from safetensors import safe_open
from transformers import (
    PreTrainedModel,
    PrinterCallback,
    Trainer,
    TrainerCallback,
    TrainingArguments,
    set_seed,
)
from transformers.trainer import TRAINER_STATE_NAME
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from loraledger.schemas.errors import Conflict, InvalidInput
from loraledger.schemas.jobs import DataStats, TrainJob, TrainOutcome
from loraledger.schemas.specs import LoraSpec
from loraledger.trainer import adapterfiles, attention, data, headloss, models
from loraledger.trainer.versions import library_versions, peak_rss_mb

# (step, total steps, loss of the last step, tokens seen, seconds elapsed)
Progress = Callable[[int, int, float | None, int, float], None]
RECIPE_FILE = "loraledger-recipe.json"
log = logging.getLogger("loraledger.trainer")


def train(job: TrainJob, *, progress: Progress | None = None) -> TrainOutcome:
    set_seed(job.training.seed)
    setup = _set_up(job)
    dataset, stats = _prepare_data(job, setup.tokenizer)
    fit = _fit(job, setup, dataset, stats, progress)
    return _save(job, setup, stats, fit)


@dataclass
class _Setup:
    """The model ready to train: LoRA attached (or continued) on the base, and the base's tokenizer."""

    model: PeftModel
    lora: LoraSpec
    tokenizer: Any
    padding: str  # how the tokenizer pads (recorded with the version)
    device: str
    dtype: torch.dtype
    trainable: int
    precision: str  # what the run computed in, in words (recorded with the version)


@dataclass
class _Fit:
    trainer: Trainer
    meter: "_Meter"
    resumed_from: Path | None
    seconds: float
    cpu_seconds: float


def _set_up(job: TrainJob) -> _Setup:
    """1. Tokenizer, base model (quantized if asked), LoRA on top."""
    spec = job.training
    device = models.pick_device()
    dtype = models.compute_dtype(spec.precision, device)
    tokenizer, padding = models.load_tokenizer(job.base, trust_remote_code=job.trust_remote_code)
    precision = models.describe_precision(dtype, device)
    model = models.load_model(
        job.base,
        quantize=spec.quantize,
        dtype=models.load_dtype(dtype, device),
        device=device,
        trust_remote_code=job.trust_remote_code,
    )
    log.info(
        "base %s loaded on %s: %s, quantize=%s; %s",
        job.base.model_id,
        device,
        precision,
        spec.quantize,
        padding,
    )
    # Non-reentrant checkpointing: the reentrant kind needs inputs that require grad and warns
    # (or silently drops gradients) when the frozen embedding output does not.
    checkpointing = {"use_reentrant": False}
    if spec.quantize != "none":
        model = prepare_model_for_kbit_training(
            model,
            use_gradient_checkpointing=spec.gradient_checkpointing,
            gradient_checkpointing_kwargs=checkpointing,
        )
    elif spec.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=checkpointing)
    peft_model, lora = attach_lora(model, job)
    trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    log.info(
        "LoRA r=%d alpha=%g on %s: %s trainable parameters (%s)",
        lora.r,
        lora.alpha,
        ",".join(lora.target_modules or []),
        f"{trainable:,}",
        "continuing the parent adapter" if job.parent_adapter else "fresh",
    )
    return _Setup(peft_model, lora, tokenizer, padding, device, dtype, trainable, precision)


def _prepare_data(job: TrainJob, tokenizer: Any) -> tuple[data.PackedDataset, DataStats]:
    """2. Data: tokenize, window, pack."""
    spec = job.training
    dataset, stats = data.prepare(
        job.records,
        tokenizer,
        max_length=spec.max_length,
        batch_tokens=spec.batch_tokens,
        seed=spec.seed,
        text_field=spec.text_field,
        chat_template=spec.chat_template,
        source_rows=job.source_rows,
    )
    log.info(
        "data: %d rows (%d replayed) -> %d windows (%d extra from long documents, %d without loss left "
        "out), %d tokens, %d carrying loss, %d micro-batches, %.1f%% padding",
        stats.rows,
        job.replay_rows,
        stats.sequences,
        stats.windows_split,
        stats.windows_skipped,
        stats.tokens,
        stats.trained_tokens,
        stats.micro_batches,
        100 * stats.padding_share,
    )
    return dataset, stats


def _fit(
    job: TrainJob, setup: _Setup, dataset: data.PackedDataset, stats: DataStats, progress: Progress | None
) -> _Fit:
    """3. Fit, from the last complete checkpoint with --resume."""
    spec = job.training
    args = TrainingArguments(
        output_dir=str(job.checkpoint_dir),
        per_device_train_batch_size=1,  # each dataset item is already a packed micro-batch
        gradient_accumulation_steps=spec.gradient_accumulation,
        num_train_epochs=spec.epochs,
        learning_rate=spec.learning_rate,
        lr_scheduler_type=spec.scheduler,
        warmup_steps=warmup_steps(
            spec.warmup, optimizer_steps(stats.micro_batches, spec.gradient_accumulation, spec.epochs)
        ),
        weight_decay=spec.weight_decay,
        max_grad_norm=spec.max_grad_norm,
        seed=spec.seed,
        data_seed=spec.seed,
        bf16=setup.dtype == torch.bfloat16,
        fp16=setup.dtype == torch.float16,
        use_cpu=setup.device == "cpu",
        logging_steps=1,
        save_strategy="steps",
        save_steps=spec.checkpoint_steps,
        save_total_limit=2,
        report_to=[],
        disable_tqdm=True,
        remove_unused_columns=False,
        dataloader_num_workers=0,
        ddp_find_unused_parameters=False,
    )
    meter = _Meter(progress, tokens_per_epoch=stats.tokens)
    trainer = _ChunkedTrainer(
        model=setup.model,
        args=args,
        train_dataset=dataset,
        data_collator=data.Collator(setup.tokenizer.pad_token_id),
        callbacks=[meter],
    )
    if setup.device == "cpu" and args.world_size == 1:
        trainer.chunk_rows = max(1, CPU_CHUNK_TOKENS // spec.max_length)
    if args.world_size == 1:  # data-parallel training must go through the wrapped model's forward
        trainer.head_loss = headloss.head_loss_for(setup.model)
    trainer.remove_callback(PrinterCallback)  # it prints every log dict to stdout, where data goes
    resume_from = last_checkpoint(job.checkpoint_dir) if job.resume else None
    if resume_from is not None:
        log.info("resuming from %s", resume_from)
    before = snapshot_trainable(setup.model)
    with attention.packed_attention(setup.model.get_base_model()) as by_document:
        log.info(
            "attention: %s", "one document at a time (packed rows)" if by_document else "the model's own"
        )
        trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    seconds, cpu_seconds = meter.seconds(), meter.cpu_seconds()
    if trainer.state.global_step > meter.start_step and not moved(setup.model, before):
        raise InvalidInput(
            f"{trainer.state.global_step - meter.start_step} training step(s) left every adapter weight "
            "unchanged (a learning rate of 0 at every step?): nothing to register; raise --epochs or "
            "--learning-rate"
        )
    return _Fit(trainer, meter, resume_from, seconds, cpu_seconds)


def _save(job: TrainJob, setup: _Setup, stats: DataStats, fit: _Fit) -> TrainOutcome:
    """4. Save (main process only) the adapter, with its resolved recipe beside it; report the numbers."""
    spec, trainer, meter, seconds = job.training, fit.trainer, fit.meter, fit.seconds
    if trainer.is_world_process_zero():
        save_adapter(setup.model, job.output_dir, job=job, lora=setup.lora, padding=setup.padding)
    trainer.accelerator.wait_for_everyone()
    step = trainer.state.global_step
    tokens_seen = meter.tokens(step, trainer.state.max_steps, spec.epochs) - meter.tokens(
        meter.start_step, trainer.state.max_steps, spec.epochs
    )
    log.info(
        "trained steps %d-%d of %d in %.1fs (%.0f tokens/s), final loss %.4f",
        meter.start_step + 1,
        step,
        trainer.state.max_steps,
        seconds,
        tokens_seen / seconds if seconds > 0 else 0.0,
        float("nan") if meter.final_loss() is None else meter.final_loss(),
    )
    return TrainOutcome(
        adapter_dir=job.output_dir,
        final_loss=meter.final_loss(),
        steps=step,
        seconds=seconds,
        tokens_per_second=tokens_seen / seconds if seconds > 0 else 0.0,
        data=stats,
        trainable_parameters=setup.trainable,
        target_modules=sorted(setup.lora.target_modules or []),
        lora=setup.lora,
        libraries=library_versions(),
        padding=setup.padding,
        resumed_from=fit.resumed_from.name if fit.resumed_from else None,
        resumed_at_step=meter.start_step if fit.resumed_from else None,
        peak_rss_mb=peak_rss_mb(),
        cpu_seconds=fit.cpu_seconds,
        precision=setup.precision,
    )


def optimizer_steps(micro_batches: int, accumulation: int, epochs: float) -> int:
    """The optimizer steps a run takes, as transformers' Trainer counts them (a partial accumulation
    at the end of an epoch is a step)."""
    per_epoch = max(micro_batches // accumulation + int(micro_batches % accumulation > 0), 1)
    return max(math.ceil(epochs * per_epoch), 1)


def warmup_steps(warmup: float, total_steps: int) -> int:
    """Warm-up steps for a run of ``total_steps``: a fraction of them below 1, else a count; never all
    of them. The first warm-up step runs at learning rate 0, so a one-step run with any warm-up
    trained nothing (issue 17: adapters from different data came out byte-identical)."""
    steps = int(warmup) if warmup >= 1 else math.ceil(total_steps * warmup)
    return max(min(steps, total_steps - 1), 0)


def snapshot_trainable(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Copies of the trainable parameters (LoRA matrices: megabytes, not the base)."""
    return {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}


def moved(model: torch.nn.Module, before: dict[str, torch.Tensor]) -> bool:
    """Whether any trainable parameter differs from its snapshot."""
    return any(
        name in before and not torch.equal(p.detach(), before[name])
        for name, p in model.named_parameters()
        if p.requires_grad
    )


def last_checkpoint(folder: Path) -> Path | None:
    """The newest complete checkpoint, after removing any that a crash left half-written.

    The Trainer writes ``trainer_state.json`` last, so a folder without a readable one was interrupted
    (kill -9 while saving); resuming from it would fail, or worse, load a partial optimizer state."""
    if not folder.is_dir():
        return None
    complete: list[tuple[int, Path]] = []
    for candidate in folder.glob(f"{PREFIX_CHECKPOINT_DIR}-*"):
        step = candidate.name.removeprefix(f"{PREFIX_CHECKPOINT_DIR}-")
        if not (candidate.is_dir() and step.isdigit()):
            continue
        try:
            json.loads((candidate / TRAINER_STATE_NAME).read_text())
        except (OSError, ValueError):
            log.warning("removing %s: a crash left it incomplete", candidate)
            shutil.rmtree(candidate, ignore_errors=True)
            continue
        complete.append((int(step), candidate))
    return max(complete)[1] if complete else None


def attach_lora(model: PreTrainedModel, job: TrainJob) -> tuple[PeftModel, LoraSpec]:
    """Continue the parent adapter with its weights trainable, or start a fresh one."""
    if job.parent_adapter is not None:
        models.check_adapter_folder(job.parent_adapter, allow_pickle=job.allow_pickle)
        parent = LoraConfig.from_pretrained(str(job.parent_adapter))
        # Dropout only regularises training: the job's applies. Rank, alpha (the scale of the update)
        # and target modules are what the parent's weights mean: they stay the parent's (the CLI
        # refuses a request for others; see cli/update.py).
        parent.lora_dropout = job.lora.dropout
        resolved = LoraSpec(
            r=parent.r,
            alpha=parent.lora_alpha,
            dropout=parent.lora_dropout,
            target_modules=sorted(parent.target_modules),
        )
        _refuse_shape_change(job.lora, resolved)
        # is_trainable=True: peft loads adapters frozen by default, which would silently train nothing.
        try:
            peft_model = PeftModel.from_pretrained(
                model, str(job.parent_adapter), is_trainable=True, config=parent
            )
        except (RuntimeError, ValueError, KeyError) as exc:  # size mismatch, missing target modules
            raise Conflict(f"the parent adapter does not fit this base model: {_reason(exc)}") from None
        # Tensors of the file that found no module in the model are dropped with a mere warning;
        # counting catches them, and a parent loaded frozen.
        expected = _stored_parameter_count(job.parent_adapter)
        trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
        if trainable != expected:
            raise Conflict(
                f"continuing the parent adapter left {trainable:,} trainable parameters, its file holds "
                f"{expected:,}: the adapter does not fit this base model"
            )
        return peft_model, resolved
    targets = job.lora.target_modules or models.default_target_modules(model)
    resolved = job.lora.model_copy(update={"target_modules": sorted(targets)})
    config = LoraConfig(
        r=resolved.r,
        lora_alpha=resolved.alpha,
        lora_dropout=resolved.dropout,
        target_modules=sorted(targets),
        task_type="CAUSAL_LM",
    )
    try:
        return get_peft_model(model, config), resolved
    except ValueError as exc:
        raise Conflict(f"cannot attach LoRA: {str(exc).splitlines()[0]}") from None


def _reason(error: Exception) -> str:
    """The informative line of a loading error (torch's starts with a generic header)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return next(
        (line for line in lines if "mismatch" in line or "not found" in line), lines[0] if lines else ""
    )


def _refuse_shape_change(asked: LoraSpec, parent: LoraSpec) -> None:
    changed = []
    if asked.r != parent.r:
        changed.append(f"rank {parent.r} -> {asked.r}")
    if asked.target_modules is not None and sorted(asked.target_modules) != parent.target_modules:
        changed.append(
            f"target modules {','.join(parent.target_modules or [])} -> {','.join(asked.target_modules)}"
        )
    if changed:
        raise Conflict(
            f"the parent adapter has a different shape ({'; '.join(changed)}): pass --fresh to start a new "
            "adapter, or keep the parent's settings"
        )


def _stored_parameter_count(folder: Path) -> int:
    if not (folder / "adapter_model.safetensors").is_file():  # pickled weights, allowed by --allow-pickle
        state = torch.load(folder / "adapter_model.bin", map_location="cpu", weights_only=True)
        return sum(tensor.numel() for tensor in state.values())
    with safe_open(str(folder / "adapter_model.safetensors"), framework="pt") as handle:
        return sum(math.prod(handle.get_slice(key).get_shape()) for key in handle.keys())  # noqa: SIM118


def save_adapter(model: PeftModel, folder: Path, *, job: TrainJob, lora: LoraSpec, padding: str) -> None:
    """Save weights and config, name the canonical base (never a local path), record the recipe."""
    if folder.exists():
        shutil.rmtree(folder)
    model.save_pretrained(str(folder), safe_serialization=True)
    (folder / "README.md").unlink(
        missing_ok=True
    )  # peft's template card; `adapters push` writes the real one
    adapterfiles.set_base(folder, job.base.model_id, job.base.revision)
    recipe = {
        "base_model": job.base.model_id,
        "base_revision": job.base.revision,
        "lora": lora.model_dump(),
        "training": job.training.model_dump(),
        "replay_rows": job.replay_rows,
        "padding": padding,
        "libraries": library_versions(),
    }
    (folder / RECIPE_FILE).write_text(json.dumps(recipe, indent=2, sort_keys=True) + "\n")


# On CPU a micro-batch is computed in chunks of at most this many tokens, so that a chunk's
# activations stay in the caches. On builtin:tiny with one thread, chunks of 2,048 tokens of a
# 4,096-token micro-batch trained 4-12% more tokens per CPU-second than the whole micro-batch, on long
# documents (512-token rows) and on short samples alike (docs/performance.md).
CPU_CHUNK_TOKENS = 2048


class _ChunkedTrainer(Trainer):  # type: ignore[misc]
    """The Trainer, computing each micro-batch in chunks of ``chunk_rows`` rows whose gradients add
    up before the optimizer step, and its loss with ``head_loss`` where one is set. The data, its order
    and the optimizer steps are the micro-batch's; so is the gradient: the model's loss is the sum over
    the step's tokens divided by their count (``num_items_in_batch``), so the chunks' losses add up to
    the micro-batch's. Without that count (a model whose loss takes no such argument) the micro-batch
    is computed whole, by the model's own forward."""

    chunk_rows: int | None = None
    head_loss: headloss.HeadLoss | None = None

    def compute_loss(
        self,
        model: torch.nn.Module,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: Any = None,
    ) -> Any:
        head = self.head_loss
        plain = model is not self.model or return_outputs or num_items_in_batch is None
        if head is None or plain or "labels" not in inputs or "shift_labels" in inputs:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        return head(inputs, num_items_in_batch, self.accelerator.autocast())

    def training_step(
        self, model: torch.nn.Module, inputs: dict[str, Any], num_items_in_batch: Any = None
    ) -> torch.Tensor:
        rows = int(inputs["input_ids"].shape[0])
        chunk = self.chunk_rows
        if chunk is None or rows <= chunk or num_items_in_batch is None or not self.model_accepts_loss_kwargs:
            return super().training_step(model, inputs, num_items_in_batch)  # type: ignore[no-any-return]
        total = torch.zeros(())
        for start in range(0, rows, chunk):
            part = {key: value[start : start + chunk] for key, value in inputs.items()}
            total = total + super().training_step(model, part, num_items_in_batch)
        return total


class _Meter(TrainerCallback):  # type: ignore[misc]
    """Forwards progress to the caller, keeps the step losses and times this session's steps."""

    def __init__(self, progress: Progress | None, *, tokens_per_epoch: int) -> None:
        self.progress = progress
        self.tokens_per_epoch = tokens_per_epoch
        self.losses: list[float] = []
        self.start_step = 0
        self.started = time.perf_counter()
        self.cpu_started = time.process_time()

    def tokens(self, step: int, max_steps: int, epochs: float) -> int:
        """Real (non-padding) tokens trained after ``step``: packing makes steps nearly equal in size."""
        return round(self.tokens_per_epoch * epochs * step / max_steps) if max_steps else 0

    def seconds(self) -> float:
        return time.perf_counter() - self.started

    def cpu_seconds(self) -> float:
        return time.process_time() - self.cpu_started

    def on_train_begin(self, args: Any, state: Any, control: Any, **_: Any) -> None:
        # After a resume the state already holds the checkpoint's step: speed counts this session only.
        self.start_step = state.global_step
        self.started = time.perf_counter()
        self.cpu_started = time.process_time()

    def on_log(
        self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None, **_: Any
    ) -> None:
        if not logs or "loss" not in logs:
            return
        self.losses.append(float(logs["loss"]))
        log.info("step %d/%d loss %.4f", state.global_step, state.max_steps, self.losses[-1])
        if self.progress is not None:
            tokens = self.tokens(state.global_step - self.start_step, state.max_steps, args.num_train_epochs)
            self.progress(state.global_step, state.max_steps, self.losses[-1], tokens, self.seconds())

    def final_loss(self) -> float | None:
        """Mean loss of the last ten steps: the last step alone is one noisy micro-batch."""
        tail = self.losses[-10:]
        return sum(tail) / len(tail) if tail else None

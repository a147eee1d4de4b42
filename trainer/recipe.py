"""Training one LoRA update, top to bottom: set up -> attach or continue LoRA -> data -> fit -> save.

Read it in one sitting. The recipe takes a ``TrainJob`` (local paths, records, specs) and returns a
``TrainOutcome`` (a saved adapter folder and its numbers); it knows nothing about the registry.
Run under ``accelerate launch`` it trains data-parallel; only the main process saves.
"""

import json
import math
import shutil
import time
from collections.abc import Callable
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
from transformers.trainer_utils import get_last_checkpoint

from loraledger.schemas.errors import Conflict
from loraledger.schemas.jobs import TrainJob, TrainOutcome
from loraledger.schemas.specs import LoraSpec
from loraledger.trainer import data, models
from loraledger.trainer.versions import library_versions, peak_rss_mb

# (step, total steps, loss of the last step, tokens seen, seconds elapsed)
Progress = Callable[[int, int, float | None, int, float], None]
RECIPE_FILE = "loraledger-recipe.json"


def train(job: TrainJob, *, progress: Progress | None = None) -> TrainOutcome:
    spec = job.training
    set_seed(spec.seed)

    # 1. Set up: tokenizer, base model (quantized if asked), LoRA on top.
    device = models.pick_device()
    dtype = models.compute_dtype(spec.precision, device)
    tokenizer, vocab_change = models.load_tokenizer(job.base, trust_remote_code=job.trust_remote_code)
    model = models.load_model(
        job.base, quantize=spec.quantize, dtype=dtype, device=device, trust_remote_code=job.trust_remote_code
    )
    if vocab_change:
        model.resize_token_embeddings(len(tokenizer))
    if spec.quantize != "none":
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=spec.gradient_checkpointing)
    elif spec.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    peft_model, lora = attach_lora(model, job)
    trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)

    # 2. Data: tokenize, window, pack.
    dataset, stats = data.prepare(
        job.records,
        tokenizer,
        max_length=spec.max_length,
        batch_tokens=spec.batch_tokens,
        seed=spec.seed,
        text_field=spec.text_field,
        chat_template=spec.chat_template,
    )

    # 3. Fit.
    args = TrainingArguments(
        output_dir=str(job.checkpoint_dir),
        per_device_train_batch_size=1,  # each dataset item is already a packed micro-batch
        gradient_accumulation_steps=spec.gradient_accumulation,
        num_train_epochs=spec.epochs,
        learning_rate=spec.learning_rate,
        lr_scheduler_type=spec.scheduler,
        warmup_steps=spec.warmup,
        weight_decay=spec.weight_decay,
        max_grad_norm=spec.max_grad_norm,
        seed=spec.seed,
        data_seed=spec.seed,
        bf16=dtype == torch.bfloat16,
        fp16=dtype == torch.float16,
        use_cpu=device == "cpu",
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
    trainer = Trainer(
        model=peft_model,
        args=args,
        train_dataset=dataset,
        data_collator=data.Collator(tokenizer.pad_token_id),
        callbacks=[meter],
    )
    trainer.remove_callback(PrinterCallback)  # it prints every log dict to stdout, where data goes
    resume_from = (
        get_last_checkpoint(str(job.checkpoint_dir)) if job.resume and job.checkpoint_dir.is_dir() else None
    )
    started = time.perf_counter()
    trainer.train(resume_from_checkpoint=resume_from)
    seconds = time.perf_counter() - started

    # 4. Save (main process only) the adapter, with its resolved recipe beside it.
    if trainer.is_world_process_zero():
        save_adapter(peft_model, job.output_dir, job=job, lora=lora)
    trainer.accelerator.wait_for_everyone()
    tokens_seen = meter.tokens(trainer.state.global_step, trainer.state.max_steps, spec.epochs)
    return TrainOutcome(
        adapter_dir=job.output_dir,
        final_loss=meter.final_loss(),
        steps=trainer.state.global_step,
        seconds=seconds,
        tokens_per_second=tokens_seen / seconds if seconds > 0 else 0.0,
        data=stats,
        trainable_parameters=trainable,
        target_modules=sorted(lora.target_modules or []),
        lora=lora,
        libraries=library_versions(),
        vocab_change=vocab_change,
        resumed_from=Path(resume_from).name if resume_from else None,
        peak_rss_mb=peak_rss_mb(),
    )


def attach_lora(model: PreTrainedModel, job: TrainJob) -> tuple[PeftModel, LoraSpec]:
    """Continue the parent adapter with its weights trainable, or start a fresh one."""
    if job.parent_adapter is not None:
        parent = LoraConfig.from_pretrained(str(job.parent_adapter))
        resolved = LoraSpec(
            r=parent.r,
            alpha=parent.lora_alpha,
            dropout=parent.lora_dropout,
            target_modules=sorted(parent.target_modules),
        )
        _refuse_shape_change(job.lora, resolved)
        # is_trainable=True: peft loads adapters frozen by default, which would silently train nothing.
        peft_model = PeftModel.from_pretrained(model, str(job.parent_adapter), is_trainable=True)
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
    with safe_open(str(folder / "adapter_model.safetensors"), framework="pt") as handle:
        return sum(math.prod(handle.get_slice(key).get_shape()) for key in handle.keys())  # noqa: SIM118


def save_adapter(model: PeftModel, folder: Path, *, job: TrainJob, lora: LoraSpec) -> None:
    """Save weights and config, name the canonical base (never a local path), record the recipe."""
    if folder.exists():
        shutil.rmtree(folder)
    model.save_pretrained(str(folder), safe_serialization=True)
    (folder / "README.md").unlink(
        missing_ok=True
    )  # peft's template card; `adapters push` writes the real one
    set_base_model_id(folder, job.base.model_id, job.base.revision)
    recipe = {
        "base_model": job.base.model_id,
        "base_revision": job.base.revision,
        "lora": lora.model_dump(),
        "training": job.training.model_dump(),
        "libraries": library_versions(),
    }
    (folder / RECIPE_FILE).write_text(json.dumps(recipe, indent=2, sort_keys=True) + "\n")


def set_base_model_id(folder: Path, model_id: str, revision: str | None) -> None:
    config_path = folder / "adapter_config.json"
    config: dict[str, Any] = json.loads(config_path.read_text())
    config["base_model_name_or_path"] = model_id
    config["revision"] = revision
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


class _Meter(TrainerCallback):  # type: ignore[misc]
    """Forwards progress to the caller and keeps the step losses."""

    def __init__(self, progress: Progress | None, *, tokens_per_epoch: int) -> None:
        self.progress = progress
        self.tokens_per_epoch = tokens_per_epoch
        self.losses: list[float] = []
        self.started = time.perf_counter()

    def tokens(self, step: int, max_steps: int, epochs: float) -> int:
        """Real (non-padding) tokens trained after ``step``: packing makes steps nearly equal in size."""
        return round(self.tokens_per_epoch * epochs * step / max_steps) if max_steps else 0

    def on_log(
        self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None, **_: Any
    ) -> None:
        if not logs or "loss" not in logs:
            return
        self.losses.append(float(logs["loss"]))
        if self.progress is not None:
            elapsed = time.perf_counter() - self.started
            tokens = self.tokens(state.global_step, state.max_steps, args.num_train_epochs)
            self.progress(state.global_step, state.max_steps, self.losses[-1], tokens, elapsed)

    def final_loss(self) -> float | None:
        """Mean loss of the last ten steps: the last step alone is one noisy micro-batch."""
        tail = self.losses[-10:]
        return sum(tail) / len(tail) if tail else None

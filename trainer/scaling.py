"""Weaker versions of a LoRA update, built exactly from the saved adapter files (no model is loaded).

A candidate at strength ``alpha`` in (0, 1] lies on the straight line, in weight space, from where the
update started (the parent adapter, or the bare base for a first version) to the trained adapter:

    W(alpha) = W0 + dP + alpha * (dN - dP)        dX = scale_X * B_X @ A_X

- First version (no parent, dP = 0): ``lora_B`` times alpha. The LoRA delta is linear in B, so this is
  exactly peft's ``rescale_adapter_scale(model, alpha)``, saved as an ordinary adapter.
- Continuation: the delta is bilinear in (A, B), so interpolating A and B separately would add cross
  terms. Instead the two updates are concatenated along the rank (peft's ``cat`` combination, exact):
  A = [A_P; A_N], B = [(1 - alpha) s_P B_P, alpha s_N B_N], with the scales folded into B and the new
  config's scale set to 1. The rank doubles (r_P + r_N); the next continuation keeps that rank. An
  SVD back to r would be smaller but lossy; we chose exactness (docs/retention.md).

Adapters this cannot rebuild exactly (DoRA, per-module rank or alpha patterns, modules_to_save, LoRA
bias) raise ``NotScalable``; the retention search then goes straight to replay.
"""

import json
import math
import shutil
from pathlib import Path
from typing import Any

WEIGHTS = "adapter_model.safetensors"
CONFIG = "adapter_config.json"


class NotScalable(ValueError):
    """The adapter's shape has no exact weaker version here (the reason is the message)."""


def read_adapter(folder: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(adapter_config.json, tensors) of a saved PEFT LoRA adapter."""
    from safetensors.torch import load_file

    config = json.loads((folder / CONFIG).read_text())
    if not (folder / WEIGHTS).is_file():
        raise NotScalable(f"{folder} holds no {WEIGHTS}")
    return config, load_file(str(folder / WEIGHTS))


def lora_scale(config: dict[str, Any]) -> float:
    """The factor peft multiplies B @ A by: lora_alpha / r, or / sqrt(r) with rsLoRA."""
    r = float(config["r"])
    return float(config["lora_alpha"]) / (math.sqrt(r) if config.get("use_rslora") else r)


def check_scalable(config: dict[str, Any]) -> None:
    problems = [
        what
        for what, present in (
            ("DoRA", config.get("use_dora")),
            ("per-module rank_pattern", config.get("rank_pattern")),
            ("per-module alpha_pattern", config.get("alpha_pattern")),
            ("modules_to_save", config.get("modules_to_save")),
            ("LoRA bias", config.get("lora_bias")),
        )
        if present
    ]
    if problems:
        raise NotScalable(f"no exact weaker candidate for an adapter with {', '.join(problems)}")


def scaled_adapter(new: Path, parent: Path | None, alpha: float, dest: Path) -> Path:
    """Write the candidate at strength ``alpha`` (see the module docstring) as a PEFT folder ``dest``."""
    import torch
    from safetensors.torch import save_file

    if not 0 < alpha <= 1:
        raise ValueError(f"alpha must be in (0, 1], not {alpha}")
    config, tensors = read_adapter(new)
    check_scalable(config)
    if parent is None:
        out = {key: value * alpha if ".lora_B." in key else value.clone() for key, value in tensors.items()}
    else:
        parent_config, parent_tensors = read_adapter(parent)
        check_scalable(parent_config)
        if set(parent_tensors) != set(tensors):
            raise NotScalable("the parent and the new adapter adapt different modules")
        new_scale, parent_scale = lora_scale(config), lora_scale(parent_config)
        out = {}
        for key, value in tensors.items():
            if ".lora_A." in key:
                out[key] = torch.cat([parent_tensors[key], value], dim=0)
            elif ".lora_B." in key:
                out[key] = torch.cat(
                    [(1 - alpha) * parent_scale * parent_tensors[key], alpha * new_scale * value], dim=1
                )
            else:
                raise NotScalable(f"unexpected tensor {key} in a LoRA adapter")
        rank = int(config["r"]) + int(parent_config["r"])
        # Scale 1 for the combined adapter: the factors are folded into B above.
        config = config | {"r": rank, "lora_alpha": math.sqrt(rank) if config.get("use_rslora") else rank}
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for extra in new.iterdir():  # tokenizer files, README: whatever else the trainer saved
        if extra.is_file() and extra.name not in (WEIGHTS, CONFIG):
            shutil.copy2(extra, dest / extra.name)
    save_file({key: value.contiguous() for key, value in out.items()}, str(dest / WEIGHTS))
    (dest / CONFIG).write_text(json.dumps(config, indent=2, sort_keys=True))
    return dest


def combined_lora(lora: dict[str, Any], config_of_candidate: Path) -> dict[str, Any]:
    """The registry's ``lora`` record of a candidate: the trained shape, with the rank and alpha the
    candidate's files really have (a continuation's doubles its rank)."""
    config = json.loads((config_of_candidate / CONFIG).read_text())
    return lora | {"r": int(config["r"]), "alpha": float(config["lora_alpha"])}

"""Saved PEFT LoRA adapter folders, read without loading a model: config, shape, and the features that
decide what may be done with them (combined exactly, served by vLLM).

No torch here: the CLI checks an adapter before it pays for loading a base model.
"""

import json
import struct
from pathlib import Path
from typing import Any

from loraledger.schemas.errors import Conflict, InvalidInput, NotFound

CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"
PICKLED_WEIGHTS_FILE = "adapter_model.bin"
SET_VALUED_CONFIG_KEYS = ("target_modules", "exclude_modules", "target_parameters")


def read_config(folder: Path) -> dict[str, Any]:
    """The adapter's ``adapter_config.json``; refuses a folder that is not a safetensors LoRA adapter."""
    path = folder / CONFIG_FILE
    if not path.is_file():
        raise NotFound(f"{folder} is not a PEFT adapter folder: it has no {CONFIG_FILE}")
    from loraledger.trainer.datafiles import load_json

    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"cannot read {path}: {exc}") from None
    # One line naming the file and line for malformed or absurdly nested JSON (no RecursionError).
    config = load_json(text, path, "line 1" if "\n" not in text.strip() else "")
    if not isinstance(config, dict):
        raise InvalidInput(f"{path} does not hold a JSON object")
    if config.get("peft_type") != "LORA":
        raise InvalidInput(
            f"{folder} holds a {config.get('peft_type') or 'untyped'} adapter; loraledger handles LoRA only"
        )
    if not (folder / WEIGHTS_FILE).is_file():
        if (folder / PICKLED_WEIGHTS_FILE).is_file():
            raise InvalidInput(
                f"{folder} holds {PICKLED_WEIGHTS_FILE} (a pickle, which can run code when loaded): only "
                f"safetensors adapters are accepted; re-save it with save_pretrained(safe_serialization=True)"
            )
        raise NotFound(f"{folder} has no {WEIGHTS_FILE}")
    return config


def check_safetensors(path: Path) -> None:
    """Refuse a safetensors file whose header does not describe exactly its bytes (truncated, padded,
    not safetensors at all), before a loader meets it with a raw SafetensorError.

    The format: 8 bytes little-endian header length N, N bytes of JSON, then the tensors, whose
    ``data_offsets`` must end exactly at the end of the file.
    """

    def refuse(why: str) -> InvalidInput:
        return InvalidInput(f"{path}: not a readable safetensors file ({why})")

    size = path.stat().st_size
    with path.open("rb") as file:
        prefix = file.read(8)
        if len(prefix) < 8:
            raise refuse(f"{size} bytes, shorter than a header")
        (header_length,) = struct.unpack("<Q", prefix)
        if header_length > min(size - 8, 100_000_000):
            raise refuse(f"its header claims {header_length:,} bytes of a {size:,}-byte file")
        try:
            header = json.loads(file.read(header_length))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            raise refuse("its header is not JSON") from None
    if not isinstance(header, dict):
        raise refuse("its header is not a JSON object")
    ends = [
        entry["data_offsets"][1]
        for key, entry in header.items()
        if key != "__metadata__" and isinstance(entry, dict) and isinstance(entry.get("data_offsets"), list)
    ]
    data = size - 8 - header_length
    if max(ends, default=0) != data:
        raise refuse(
            f"truncated or padded: the header describes {max(ends, default=0):,} bytes of tensors, "
            f"the file holds {data:,}"
        )


def target_modules(config: dict[str, Any]) -> list[str]:
    """The adapted modules as a sorted list (a regex target is kept as its one pattern)."""
    targets = config.get("target_modules") or []
    return [targets] if isinstance(targets, str) else sorted(targets)


def max_rank(config: dict[str, Any]) -> int:
    """The largest rank of any layer (``rank_pattern`` may raise it above ``r``)."""
    return max([int(config["r"]), *(int(r) for r in (config.get("rank_pattern") or {}).values())])


def lora_shape(config: dict[str, Any]) -> dict[str, Any]:
    """The adapter's shape in the registry's terms (the fields of ``LoraSpec``)."""
    return {
        "r": int(config["r"]),
        "alpha": float(config["lora_alpha"]),
        "dropout": float(config.get("lora_dropout") or 0.0),
        "target_modules": target_modules(config),
    }


def special_features(config: dict[str, Any]) -> list[str]:
    """Features beyond a plain LoRA update B·A·alpha/r that change how the adapter must be handled."""
    found = []
    if config.get("use_dora"):
        found.append("DoRA (use_dora)")
    if config.get("use_rslora"):
        found.append("rsLoRA (use_rslora)")
    if config.get("lora_bias"):
        found.append("a LoRA bias (lora_bias)")
    if config.get("modules_to_save"):
        found.append(f"fully trained modules (modules_to_save: {', '.join(config['modules_to_save'])})")
    return found


def refuse_special(config: dict[str, Any], what: str, action: str) -> None:
    """Refuse an adapter whose special features ``action`` would get wrong."""
    features = special_features(config)
    if features:
        raise Conflict(f"{what} uses {' and '.join(features)}: {action} would give wrong results for it")


def set_base(folder: Path, model_id: str, revision: str | None) -> None:
    """Name the canonical base in the adapter's config (peft writes whatever path it loaded from), and
    write the file the same way every time."""
    path = folder / CONFIG_FILE
    config: dict[str, Any] = json.loads(path.read_text())
    config["base_model_name_or_path"] = model_id
    config["revision"] = revision
    # peft keeps these as sets and saves them in set order, which changes with Python's per-process
    # string hashing: the same adapter would get another digest in the next process.
    for key in SET_VALUED_CONFIG_KEYS:
        if isinstance(config.get(key), list):
            config[key] = sorted(config[key])
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")

"""Exporting an adapter for serving: a PEFT folder named for its version, plus what the server needs.

    peft   DIR/NAME-vN/                adapter_config.json (naming the canonical base) + weights
    vllm   ... + DIR/NAME-vN.vllm.json   the value of vLLM's ``--lora-modules``
    lorax  ... + DIR/NAME-vN.lorax.json  the request parameters (``adapter_id``, ``adapter_source``)

Every version gets its own name: vLLM caches adapters by name, and a new version loaded under an old
name can serve the old weights (vLLM #42125). No torch here: an export copies files and checks configs.
"""

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loraledger.schemas.errors import Conflict, InvalidInput
from loraledger.trainer import adapterfiles

FORMATS = ("peft", "vllm", "lorax")
# The values vLLM's --max-lora-rank accepts (vllm.config.lora.MaxLoRARanks), and its default.
VLLM_MAX_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
VLLM_DEFAULT_MAX_LORA_RANK = 16


@dataclass(frozen=True)
class ExportOutcome:
    format: str
    module_name: str
    adapter_dir: Path
    extra_files: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    serve_hint: str | None = None

    def record(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "name": self.module_name,
            "files": [str(path) for path in self.extra_files],
            "warnings": self.warnings,
        }


def vllm_findings(config: dict[str, Any]) -> tuple[list[str], int | None]:
    """(problems that make vLLM reject the adapter, the --max-lora-rank it needs when above the default)."""
    problems = []
    if config.get("modules_to_save"):
        problems.append(f"modules_to_save ({', '.join(config['modules_to_save'])})")
    if config.get("use_dora"):
        problems.append("DoRA (use_dora)")
    rank = adapterfiles.max_rank(config)
    if rank <= VLLM_DEFAULT_MAX_LORA_RANK:
        return problems, None
    fitting = [value for value in VLLM_MAX_LORA_RANKS if value >= rank]
    if not fitting:
        problems.append(f"rank {rank} (vLLM's --max-lora-rank stops at {VLLM_MAX_LORA_RANKS[-1]})")
        return problems, None
    return problems, fitting[0]


def export_adapter(
    adapter_dir: Path,
    dest: Path,
    *,
    module_name: str,
    base_id: str,
    base_revision: str | None,
    format: str,
    replace: bool = False,
) -> ExportOutcome:
    """Write the adapter to ``dest/module_name`` (and the server's settings beside it)."""
    if format not in FORMATS:
        raise InvalidInput(f"unknown --format {format!r}: use one of {', '.join(FORMATS)}")
    config = adapterfiles.read_config(adapter_dir)
    warnings: list[str] = []
    max_lora_rank = None
    if format == "vllm":
        problems, max_lora_rank = vllm_findings(config)
        if problems:
            raise Conflict(f"vLLM cannot serve {module_name}: it rejects adapters with {'; '.join(problems)}")
        if max_lora_rank is not None:
            warnings.append(
                f"rank {adapterfiles.max_rank(config)} is above vLLM's default --max-lora-rank "
                f"{VLLM_DEFAULT_MAX_LORA_RANK}: start vLLM with --max-lora-rank {max_lora_rank}"
            )
    if base_id.startswith("builtin:"):
        warnings.append(
            f"the base {base_id} is built by loraledger: a server needs a copy of it (e.g. pushed to the Hub)"
        )

    target = dest / module_name
    sidecar = dest / f"{module_name}.{format}.json" if format in ("vllm", "lorax") else None
    # Every path is checked before anything is written, so a refusal leaves DEST as it was.
    for planned in (target, sidecar) if sidecar is not None else (target,):
        _check_free(planned, replace)
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for item in sorted(adapter_dir.iterdir()):
        if item.is_file() and item.name != "README.md":
            shutil.copy2(item, target / item.name)
    adapterfiles.set_base(target, base_id, base_revision)
    path = str(target.resolve())

    extra: list[Path] = []
    hint = None
    if format == "vllm":
        module = {"name": module_name, "path": path, "base_model_name": base_id}
        extra.append(_write_json(dest / f"{module_name}.vllm.json", module, replace=replace))
        rank_flag = f" --max-lora-rank {max_lora_rank}" if max_lora_rank else ""
        hint = f"vllm serve {base_id} --enable-lora{rank_flag} --lora-modules '{json.dumps(module)}'"
    elif format == "lorax":
        parameters = {"adapter_id": path, "adapter_source": "local"}
        extra.append(_write_json(dest / f"{module_name}.lorax.json", parameters, replace=replace))
        hint = (
            f'lorax-launcher --model-id {base_id}; then POST /generate with "parameters": '
            f"{json.dumps(parameters)}"
        )
    return ExportOutcome(format, module_name, target, extra, warnings, hint)


def _check_free(path: Path, replace: bool) -> None:
    """``path`` may be written: not a link (live or dangling: the write would land where it points, in
    a file the user never named), and absent unless ``replace``."""
    if path.is_symlink():
        raise Conflict(f"{path} is a link: refusing to write through it (remove it)")
    if path.exists() and not replace:
        raise Conflict(f"{path} already exists: pass --force to replace it")


def _write_json(path: Path, value: dict[str, Any], *, replace: bool) -> Path:
    """Create ``path`` afresh: O_EXCL | O_NOFOLLOW, so a link planted after the checks above is refused
    by the kernel rather than followed."""
    _check_free(path, replace)
    if path.exists():
        path.unlink()
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    except FileExistsError:
        raise Conflict(f"{path} appeared while exporting: refusing to replace it") from None
    with os.fdopen(descriptor, "w") as file:
        file.write(json.dumps(value, indent=2) + "\n")
    return path

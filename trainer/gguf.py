"""GGUF base models (the llama.cpp / Ollama file format): found, described and dequantized once.

transformers reads a GGUF file (``from_pretrained(folder, gguf_file=name)``, with the ``gguf`` package)
by dequantizing every tensor to torch weights: about 20 s for a 135 M-parameter file on 2 cores, every
time. Training, scoring, merging and checking an adapter each load the base, so the file is dequantized
once into a plain safetensors folder in the cache, keyed by the file's sha256, and everything downstream
loads that folder like any other. The folder also sidesteps ``save_pretrained`` refusing a GGUF-loaded
model ("quantized with gguf and is not serializable"), which would otherwise break merging.

The record keeps the file as the identity: its path is the model id, its sha256 the weights digest, its
architecture metadata the config digest, and ``GGUF <quantization>`` the source format.
"""

import hashlib
import json
import shutil
import uuid
from pathlib import Path
from typing import Any

from loraledger.schemas.errors import InvalidInput

SUFFIX = ".gguf"
SOURCE_FILE = "gguf-source.json"  # written into the dequantized folder: which file it came from
CHUNK = 1 << 20
# Metadata that is not the architecture: the vocabulary (covered by the file digest anyway), the file
# layout, and free-text descriptions that a re-upload may change.
_NOT_ARCHITECTURE = ("tokenizer.", "GGUF.", "general.")
_KEEP_GENERAL = ("general.architecture", "general.file_type")


def find_file(path: Path) -> Path | None:
    """The GGUF file that ``path`` names: the file itself, or the only ``.gguf`` in a folder that is not
    a transformers model folder (one with config.json loads as such). None when ``path`` is neither."""
    if path.is_file():
        return path.resolve() if path.suffix.lower() == SUFFIX else None
    if not path.is_dir() or (path / "config.json").is_file():
        return None
    found = sorted(p for p in path.iterdir() if p.suffix.lower() == SUFFIX and p.is_file())
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise InvalidInput(f"{path} holds {len(found)} GGUF files ({names}): pass --base with the one to use")
    return found[0].resolve() if found else None


def file_sha256(path: Path) -> str:
    hasher = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            hasher.update(chunk)
    return f"sha256:{hasher.hexdigest()}"


def _reader(path: Path) -> Any:
    try:
        import gguf
    except ImportError:
        raise InvalidInput(
            f"{path.name} is a GGUF file: reading it needs the gguf package (pip install gguf)"
        ) from None
    try:
        return gguf.GGUFReader(str(path))
    except (ValueError, OSError) as exc:
        raise InvalidInput(f"{path} is not a readable GGUF file: {exc}") from None


def _quantization(reader: Any) -> str:
    """The file's weight type as llama.cpp names it (``Q4_1``, ``Q8_0``, ``F16``), from its metadata."""
    import gguf

    field = reader.fields.get("general.file_type")
    if field is None:
        return "unknown"
    value = int(field.parts[field.data[0]][0])
    try:
        return gguf.LlamaFileType(value).name.removeprefix("MOSTLY_").removeprefix("ALL_")
    except ValueError:
        return f"file type {value}"


def _architecture(reader: Any) -> dict[str, Any]:
    """The metadata that defines the network (layers, heads, sizes, rope): what config.json would say."""
    fields = reader.fields
    described: dict[str, Any] = {}
    for name, field in fields.items():
        if name.startswith(_NOT_ARCHITECTURE) and name not in _KEEP_GENERAL:
            continue
        value = field.contents()
        described[name] = value.tolist() if hasattr(value, "tolist") else value
    return described


def source_of(folder: Path) -> dict[str, Any]:
    """What a dequantized folder says about its GGUF file: ``file``, ``digest``, ``quantization`` and
    ``architecture`` (read once at build time: the gguf package parses a file's metadata, vocabulary
    arrays included, in Python, about 18 s for a 49k-token vocabulary on this machine)."""
    source: dict[str, Any] = json.loads((folder / SOURCE_FILE).read_text())
    return source


def dequantized_folder(path: Path, digest: str, cache_dir: Path) -> Path:
    """A safetensors folder (config, fp32 weights, tokenizer) with the weights of GGUF file ``path``,
    built on first use. Built beside its final name and renamed, so a crash or a concurrent build never
    leaves a half folder under the name."""
    folder = cache_dir / "gguf" / f"{path.stem}-{digest.removeprefix('sha256:')[:16]}"
    if (folder / SOURCE_FILE).is_file():
        return folder
    partial = folder.parent / f".{folder.name}.partial-{uuid.uuid4().hex[:8]}"
    try:
        reader = _reader(path)  # a clear error for a missing gguf package or a damaged file, first
        described = {
            "file": path.name,
            "digest": digest,
            "quantization": _quantization(reader),
            "architecture": _architecture(reader),
        }
        del reader
        _dequantize(path, partial)
        (partial / SOURCE_FILE).write_text(json.dumps(described, indent=1) + "\n")
        try:
            partial.rename(folder)
        except OSError:
            if not (folder / SOURCE_FILE).is_file():  # not another process's finished build: a real error
                raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return folder


def _dequantize(path: Path, out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        loaded = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    except (ValueError, KeyError, RuntimeError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InvalidInput(f"cannot load {path.name} as a causal LM: {reason}") from None
    # A GGUF-loaded model refuses save_pretrained (its config carries a gguf quantization_config): copy
    # the dequantized weights into a plain model of the same config, which saves as safetensors.
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(loaded.state_dict())
    del loaded
    out.mkdir(parents=True)
    plain.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))

"""Base-model fingerprints: what the weights are, not only what they are called.

``config_digest`` covers the architecture (config.json without bookkeeping keys); ``weights_digest`` is
the manifest digest of the weight files and the files that define the vocabulary (an adapter is only
meaningful with the token ids it was trained on); a GGUF base is fingerprinted by its file instead.
Hashing a 15 GB checkpoint takes a while, so digests are cached by (path, size, modification time) under
the home's cache folder.
"""

import json
from pathlib import Path

from loraledger.registry.digests import config_digest, file_digest, manifest_digest
from loraledger.schemas.errors import InvalidInput
from loraledger.schemas.jobs import BaseSource
from loraledger.schemas.records import BaseModelRecord

# Keys that change with the saving library or the folder, not with the model.
VOLATILE_CONFIG_KEYS = ("transformers_version", "_name_or_path", "torch_dtype", "dtype", "use_cache")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
# Vocabulary files only: tokenizer_config.json also holds settings that re-saving rewrites.
VOCABULARY_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "merges.txt", "spiece.model")


def fingerprint(source: BaseSource, cache_dir: Path) -> BaseModelRecord:
    if source.gguf_file is not None:
        return _gguf_fingerprint(source, cache_dir)
    try:
        config = json.loads((source.path / "config.json").read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InvalidInput(f"cannot read the config of {source.model_id}: {exc}") from None
    cache = _Cache(cache_dir / "fingerprints.json")
    weights = {
        file.name: cache.digest(file)
        for file in sorted(source.path.iterdir())
        if (file.suffix in WEIGHT_SUFFIXES or file.name in VOCABULARY_FILES) and file.is_file()
    }
    cache.save()
    return BaseModelRecord(
        model_id=source.model_id,
        revision=source.revision,
        config_digest=config_digest(config, ignore=VOLATILE_CONFIG_KEYS),
        weights_digest=manifest_digest(weights) if weights else None,
    )


def _gguf_fingerprint(source: BaseSource, cache_dir: Path) -> BaseModelRecord:
    """A GGUF base is the file: its sha256 covers weights and vocabulary, its architecture metadata
    stands for config.json. Its dequantized copy is derived data and is not what is fingerprinted (a
    new transformers may dequantize into a differently-worded config)."""
    from loraledger.trainer import gguf

    assert source.gguf_file is not None
    cache = _Cache(cache_dir / "fingerprints.json")
    digest = cache.digest(source.gguf_file)
    cache.save()
    return BaseModelRecord(
        model_id=source.model_id,
        config_digest=config_digest(gguf.source_of(source.path)["architecture"]),
        weights_digest=digest,
        source_format=source.source_format,
    )


class _Cache:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.changed = False
        try:
            self.entries: dict[str, str] = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            self.entries = {}

    def digest(self, file: Path) -> str:
        stat = file.resolve().stat()
        key = f"{file.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
        if key not in self.entries:
            self.entries[key] = file_digest(file)
            self.changed = True
        return self.entries[key]

    def save(self) -> None:
        if self.changed:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            temporary = self.path.with_suffix(".tmp")
            temporary.write_text(json.dumps(self.entries, indent=1, sort_keys=True))
            temporary.replace(self.path)

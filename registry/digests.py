"""Content digests, always tagged with their algorithm (``sha256:<hex>``) so a later change of
algorithm is detectable rather than silently incomparable.

Dataset digests are taken over a canonical form of the records, not the file bytes: the same records
give the same digest whatever the file is called, where it lives, how its keys are ordered, which line
endings it uses or in which order its rows come.
"""

import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

ALGORITHM = "sha256"
CHUNK = 1 << 20


def tag(hex_digest: str) -> str:
    return f"{ALGORITHM}:{hex_digest}"


def untag(digest: str) -> str:
    algorithm, sep, hex_digest = digest.partition(":")
    if not sep or algorithm != ALGORITHM or len(hex_digest) != 64:
        raise ValueError(f"not a {ALGORITHM} digest: {digest!r}")
    return hex_digest


def bytes_digest(data: bytes) -> str:
    return tag(hashlib.sha256(data).hexdigest())


def file_digest(path: Path) -> str:
    hasher = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            hasher.update(chunk)
    return tag(hasher.hexdigest())


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def _normalise(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\r\n", "\n").replace("\r", "\n")
    if isinstance(value, Mapping):
        return {str(key): _normalise(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_normalise(item) for item in value]
    return value


def canonical_records(records: Iterable[Mapping[str, Any]]) -> list[str]:
    """One canonical JSON line per record, sorted, so row order does not change the digest."""
    return sorted(canonical_json(_normalise(record)) for record in records)


def dataset_digest(records: Iterable[Mapping[str, Any]]) -> str:
    return canonical_lines_digest(canonical_records(records))


def canonical_lines_digest(lines: list[str]) -> str:
    return bytes_digest(canonical_lines_bytes(lines))


def canonical_lines_bytes(lines: list[str]) -> bytes:
    return "".join(line + "\n" for line in lines).encode("utf-8")


def config_digest(config: Mapping[str, Any], *, ignore: Iterable[str] = ()) -> str:
    skipped = set(ignore)
    return bytes_digest(canonical_json({k: v for k, v in config.items() if k not in skipped}).encode())


def manifest_digest(files: Mapping[str, str]) -> str:
    """Digest of a folder: sha256 over sorted ``path:digest`` lines (the W&B artifact manifest scheme)."""
    return bytes_digest("".join(f"{path}:{files[path]}\n" for path in sorted(files)).encode())

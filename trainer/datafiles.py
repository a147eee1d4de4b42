"""Reading training and eval data from files: JSONL, JSON, CSV, Parquet and plain text, files or folders.

Returns plain records (dicts). Imports no torch, so the CLI can read, validate and digest data before
deciding to load a model. Every problem is a one-line DataError naming the file and, where there is
one, the line.
"""

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loraledger.schemas.errors import InvalidInput

SUFFIXES = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".csv": "csv",
    ".parquet": "parquet",
    ".txt": "text",
    ".md": "text",
}
ROW_SHAPES = "a text field, prompt + completion, or messages"


class DataError(InvalidInput):
    """The data cannot be used as given."""


@dataclass(frozen=True)
class LoadedData:
    records: list[dict[str, Any]]
    format: str
    source: str
    files: int


def read_records(path: Path, *, text_field: str = "text") -> LoadedData:
    """All records under ``path`` (a file, or a folder read recursively in name order)."""
    if not path.exists():
        raise DataError(f"data file not found: {path}")
    files = (
        sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
        if path.is_dir()
        else [path]
    )
    if not files:
        raise DataError(f"no data files ({', '.join(sorted(SUFFIXES))}) under {path}")
    records: list[dict[str, Any]] = []
    formats = set()
    for file in files:
        file_format = SUFFIXES.get(file.suffix.lower())
        if file_format is None:
            raise DataError(
                f"{file}: unsupported file type {file.suffix!r} (use {', '.join(sorted(SUFFIXES))})"
            )
        formats.add(file_format)
        records.extend(
            _check_shape(record, file, where, text_field) for where, record in _read(file, file_format)
        )
    if not records:
        raise DataError(f"{path}: the dataset is empty")
    return LoadedData(records=records, format="+".join(sorted(formats)), source=str(path), files=len(files))


def _read(file: Path, file_format: str) -> Iterator[tuple[str, dict[str, Any]]]:
    if file_format == "parquet":
        yield from _read_parquet(file)
        return
    text = _decode(file)
    if file_format == "jsonl":
        # Records end at "\n" only: str.splitlines() would also split at U+2028, U+0085 and other
        # characters that JSON allows raw inside strings.
        for number, line in enumerate(text.split("\n"), start=1):
            line = line.removesuffix("\r")
            if not line.strip():
                continue
            yield f"line {number}", _json_object(line, file, f"line {number}")
    elif file_format == "json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(f"{file}: malformed JSON at line {exc.lineno}: {exc.msg}") from None
        rows = data.get("data", data.get("rows")) if isinstance(data, dict) else data
        if not isinstance(rows, list):
            raise DataError(f"{file}: expected a JSON list of records (or an object with a 'data' list)")
        for index, row in enumerate(rows):
            if not isinstance(row, dict):
                raise DataError(f"{file}: record {index} is {type(row).__name__}, expected an object")
            if "\\u" in text:
                _check_escapes(row, file, f"record {index}")
            yield f"record {index}", row
    elif file_format == "csv":
        # The csv module finds record ends itself: quoted fields may hold line breaks.
        reader = csv.DictReader(io.StringIO(text, newline=""))
        for row in reader:
            number = reader.line_num
            if None in row:
                raise DataError(f"{file}: line {number} has more fields than the header")
            yield f"line {number}", dict(row)
    else:
        if text.strip():
            yield "file", {"text": text}


def _decode(file: Path) -> str:
    raw = file.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataError(
            f"{file}: not UTF-8 text (invalid byte at line {line}); convert it to UTF-8"
        ) from None


def _json_object(line: str, file: Path, where: str) -> dict[str, Any]:
    try:
        value = json.loads(line)
    except json.JSONDecodeError as exc:
        raise DataError(f"{file}: malformed JSON on {where}: {exc.msg}") from None
    if not isinstance(value, dict):
        raise DataError(f"{file}: {where} is a JSON {type(value).__name__}, expected an object")
    if "\\u" in line:
        _check_escapes(value, file, where)
    return value


def _check_escapes(value: dict[str, Any], file: Path, where: str) -> None:
    """A ``\\ud800``-style escape decodes to half a character, which no text encoder accepts."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise DataError(
            f"{file}: {where} holds an escape for half a character (a lone surrogate such as \\ud800)"
        ) from None


def _read_parquet(file: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DataError("reading Parquet needs pyarrow: pip install 'loraledger[train]'") from None
    try:
        table = pq.read_table(file)
    except Exception as exc:  # pyarrow raises several unrelated types for unreadable files
        raise DataError(f"{file}: unreadable Parquet file: {exc}") from None
    for index, row in enumerate(table.to_pylist()):
        yield f"row {index}", row


def _check_shape(record: dict[str, Any], file: Path, where: str, text_field: str) -> dict[str, Any]:
    if isinstance(record.get(text_field), str):
        if not record[text_field].strip():
            raise DataError(f"{file}: {where}: field {text_field!r} is empty")
        return record
    if isinstance(record.get("prompt"), str) and isinstance(record.get("completion"), str):
        return record
    messages = record.get("messages")
    if isinstance(messages, list) and messages:
        for message in messages:
            if not (
                isinstance(message, dict) and isinstance(message.get("content"), str) and "role" in message
            ):
                raise DataError(f"{file}: {where}: each message needs 'role' and a string 'content'")
        return record
    keys = ", ".join(sorted(record)) or "none"
    raise DataError(f"{file}: {where} has no {text_field!r} field (fields: {keys}); rows need {ROW_SHAPES}")

"""Reading training and eval data from files: JSONL, JSON, CSV, Parquet and plain text, files or folders.

Returns plain records (dicts). Imports no torch, so the CLI can read, validate and digest data before
deciding to load a model. Every problem is a one-line DataError naming the file and, where there is
one, the line.
"""

import csv
import io
import json
import os
import stat
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
# Bounds that keep one hostile record from exhausting the machine (docs/security.md). A record of more
# than 16 million characters (a 44 MB document took 7 GB and over five minutes to tokenize) is refused:
# split it into documents. Nesting deeper than 100 levels is no training record; Python's parser would
# fail at about 1,000 with a RecursionError that names no line.
MAX_RECORD_CHARS = 16_000_000
MAX_DEPTH = 100
# csv's own limit (128 kB a field) is below what a record may hold; records are bounded above instead.
csv.field_size_limit(MAX_RECORD_CHARS + 1)


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
    files = _folder_files(path) if path.is_dir() else [_regular(path)]
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


def _regular(file: Path) -> Path:
    """``file`` if it is a regular file (or a link to one): a FIFO would block the read forever, a
    device would never end."""
    mode = file.stat().st_mode
    if not stat.S_ISREG(mode):
        raise DataError(f"{file}: not a regular file ({_kind(mode)}): data must be files or folders of files")
    return file


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISDIR, "a folder"),
    ):
        if test(mode):
            return name
    return "a special file"


def _folder_files(folder: Path) -> list[Path]:
    """The data files under ``folder``, walked without following links; a link is read only when it
    points inside the folder (a link to a private file elsewhere would be copied into the store)."""
    root = folder.resolve()
    found: list[Path] = []
    for directory, subdirectories, names in os.walk(folder):
        for name in sorted([*subdirectories, *names]):
            entry = Path(directory) / name
            if entry.is_symlink():
                try:
                    target = entry.resolve(strict=True)
                except (OSError, RuntimeError):  # a dangling link, or a loop (RuntimeError before 3.13)
                    raise DataError(f"{entry}: a link that leads nowhere (dangling, or a loop)") from None
                if not target.is_relative_to(root):
                    raise DataError(
                        f"{entry}: a link to {target}, outside {folder}: copy the file into the folder"
                    )
                if target.is_dir():
                    continue  # its files are read where they really are, inside the folder
            elif entry.is_dir():
                continue  # os.walk descends into it
            if entry.suffix.lower() in SUFFIXES:
                found.append(_regular(entry))
    return sorted(found)


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
            _check_size(len(line), file, f"line {number}")
            yield f"line {number}", _json_object(line, file, f"line {number}")
    elif file_format == "json":
        data = load_json(text, file)
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
        for row in _csv_rows(reader, file):
            number = reader.line_num
            if None in row:
                raise DataError(f"{file}: line {number} has more fields than the header")
            _check_size(sum(len(value or "") for value in row.values()), file, f"line {number}")
            yield f"line {number}", dict(row)
    else:
        if text.strip():
            _check_size(len(text), file, "file")
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


def _check_size(chars: int, file: Path, where: str) -> None:
    if chars > MAX_RECORD_CHARS:
        raise DataError(
            f"{file}: {where}: the record holds more than {MAX_RECORD_CHARS:,} characters "
            f"({chars:,}): split it into smaller documents"
        )


def _csv_rows(reader: "csv.DictReader[str]", file: Path) -> Iterator[dict[str, str]]:
    try:
        yield from reader
    except csv.Error as exc:
        number = reader.line_num
        if "field larger than field limit" in str(exc):
            raise DataError(
                f"{file}: line {number}: the record holds more than {MAX_RECORD_CHARS:,} characters: "
                "split it into smaller documents"
            ) from None
        raise DataError(f"{file}: line {number}: malformed CSV: {exc}") from None


def load_json(text: str, file: Path, where: str = "") -> Any:
    """``json.loads`` with one-line errors naming the file and line, and nesting bounded by MAX_DEPTH
    (also used for adapter configs)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        if where:
            raise DataError(f"{file}: malformed JSON on {where}: {exc.msg}") from None
        raise DataError(f"{file}: malformed JSON at line {exc.lineno}: {exc.msg}") from None
    except RecursionError:
        value = None
        depth = MAX_DEPTH + 1
    else:
        depth = _depth(value)
    if depth > MAX_DEPTH:
        place = where or f"line {_line_of_depth(text)}"
        raise DataError(f"{file}: {place}: nested deeper than {MAX_DEPTH} levels")
    return value


def _depth(value: Any) -> int:
    """Nesting depth of a parsed JSON value, without recursion; stops counting past MAX_DEPTH."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            return depth
        deepest = max(deepest, depth)
        if isinstance(item, dict):
            stack.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)
    return deepest


def _line_of_depth(text: str) -> int:
    """The line on which the nesting first passes MAX_DEPTH (brackets counted outside strings)."""
    depth, line, in_string, escaped = 0, 1, False, False
    for character in text:
        if character == "\n":
            line += 1
        elif in_string:
            if escaped:
                escaped = False
            elif character == "\\":
                escaped = True
            elif character == '"':
                in_string = False
        elif character == '"':
            in_string = True
        elif character in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return line
        elif character in "]}":
            depth -= 1
    return line


def _json_object(line: str, file: Path, where: str) -> dict[str, Any]:
    value = load_json(line, file, where)
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

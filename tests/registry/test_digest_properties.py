"""Property tests of dataset digests, through the same file reader `adapters train` uses: the same
content gives the same digest whatever the key order, row order, line endings, file name, folder or
format; different content gives a different digest."""

import csv
import io
import json
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from loraledger.registry.digests import canonical_records, dataset_digest
from loraledger.trainer.datafiles import read_records

# Any Unicode but surrogates (a file cannot hold half a character; see test_bad_input), including the
# characters str.splitlines() treats as line breaks (U+2028, U+0085...).
chars = st.characters(exclude_categories=("Cs",))
text = st.text(chars, max_size=40)
words = st.text(chars, min_size=1, max_size=40).filter(lambda s: s.strip() != "")
keys = st.text(st.characters(codec="ascii", exclude_categories=("Cc",)), min_size=1, max_size=8).filter(
    lambda k: k != "text"
)
scalars = st.one_of(text, st.integers(-(10**12), 10**12), st.booleans(), st.none())
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3), max_leaves=6)
records = st.lists(
    st.builds(lambda body, extra: {"text": body, **extra}, words, st.dictionaries(keys, values, max_size=3)),
    min_size=1,
    max_size=6,
)
string_records = st.lists(
    st.builds(lambda body, extra: {"text": body, **extra}, words, st.dictionaries(keys, text, max_size=2)),
    min_size=1,
    max_size=5,
)
file_names = st.sampled_from(["data", "rulings-2026-10", "x", "a b", "ünïcode"])
PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def digest_of_file(folder: Path, name: str, content: bytes) -> str:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return dataset_digest(read_records(path).records)


def jsonl(rows: list[dict[str, Any]], *, newline: str = "\n", ascii_only: bool = False) -> bytes:
    return "".join(json.dumps(row, ensure_ascii=ascii_only) + newline for row in rows).encode()


def with_crlf(value: Any) -> Any:
    """The same content written on Windows: every line break inside strings (LF, CR or already CRLF)
    becomes CRLF; a CRLF already there stays one (converted blindly it would be CR CR LF, another text:
    hypothesis found `"0\\r\\n"`)."""
    if isinstance(value, str):
        return value.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\r\n")
    if isinstance(value, dict):
        return {key: with_crlf(item) for key, item in value.items()}
    if isinstance(value, list):
        return [with_crlf(item) for item in value]
    return value


@PROPERTY
@given(records, st.randoms(use_true_random=False))
def test_key_and_row_order_do_not_matter(rows: list[dict[str, Any]], random: Any) -> None:
    shuffled = [dict(random.sample(list(row.items()), len(row))) for row in rows]
    random.shuffle(shuffled)
    assert dataset_digest(shuffled) == dataset_digest(rows)


@PROPERTY
@given(records, st.randoms(use_true_random=False), file_names, file_names, st.booleans())
def test_same_records_same_digest_whatever_the_file(
    rows: list[dict[str, Any]], random: Any, name: str, other: str, ascii_only: bool
) -> None:
    expected = dataset_digest(rows)
    reordered = [dict(reversed(list(row.items()))) for row in random.sample(rows, len(rows))]
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        digests = [
            digest_of_file(folder, f"{name}.jsonl", jsonl(rows)),
            digest_of_file(folder / "elsewhere" / "deeper", f"{other}.jsonl", jsonl(reordered)),
            digest_of_file(folder, "crlf.jsonl", jsonl(rows, newline="\r\n", ascii_only=ascii_only)),
            digest_of_file(folder, "bom.jsonl", b"\xef\xbb\xbf" + jsonl(rows)),
            digest_of_file(folder, f"{name}.json", json.dumps(reordered, indent=2).encode()),
            digest_of_file(folder, "wrapped.json", json.dumps({"data": rows}).encode()),
            digest_of_file(folder, "windows.jsonl", jsonl([with_crlf(row) for row in rows])),
        ]
    assert digests == [expected] * len(digests)


@PROPERTY
@given(string_records, file_names)
def test_csv_and_jsonl_of_the_same_records_agree(rows: list[dict[str, str]], name: str) -> None:
    columns = sorted({key for row in rows for key in row})
    full = [{column: row.get(column, "") for column in columns} for row in rows]  # CSV has every column
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(full)
    with tempfile.TemporaryDirectory() as scratch:
        from_csv = digest_of_file(Path(scratch), f"{name}.csv", buffer.getvalue().encode())
        from_jsonl = digest_of_file(Path(scratch), f"{name}.jsonl", jsonl(full))
    assert from_csv == from_jsonl == dataset_digest(full)


@PROPERTY
@given(records, records)
def test_different_content_different_digest(left: list[dict[str, Any]], right: list[dict[str, Any]]) -> None:
    same_content = canonical_records(left) == canonical_records(right)
    assert (dataset_digest(left) == dataset_digest(right)) == same_content


@PROPERTY
@given(records, st.data())
def test_any_edit_changes_the_digest(rows: list[dict[str, Any]], data: st.DataObject) -> None:
    index = data.draw(st.integers(0, len(rows) - 1))
    edit = data.draw(st.sampled_from(["append", "drop-row", "duplicate-row", "new-field", "retype"]))
    changed = [dict(row) for row in rows]
    if edit == "append":
        changed[index]["text"] += data.draw(words)
    elif edit == "drop-row":
        assume(len(rows) > 1)
        del changed[index]
    elif edit == "duplicate-row":
        changed.append(dict(rows[index]))
    elif edit == "new-field":
        key = data.draw(keys.filter(lambda k: k not in rows[index]))
        changed[index][key] = data.draw(values)
    else:
        key = data.draw(st.sampled_from(sorted(rows[index])))
        original = rows[index][key]
        changed[index][key] = [original] if not isinstance(original, list) else json.dumps(original)
    assert dataset_digest(changed) != dataset_digest(rows)

"""Dataset digests: sha256 over the canonical records, tagged ``sha256:``; the same content gives the
same digest whatever the file is called, where it lives, how its keys are ordered or which line endings
it uses; different content gives a different digest. (Property tests live elsewhere; these are the
plain cases, read through the same file reader `adapters train` uses.)"""

import hashlib
import json
from pathlib import Path

import pytest

from loraledger.registry.digests import (
    canonical_lines_bytes,
    canonical_records,
    dataset_digest,
    tag,
    untag,
)
from loraledger.trainer.datafiles import read_records

RECORDS = [
    {"text": "The licensee may copy the work.", "source": "ruling 12"},
    {"text": "Line one\nline two", "source": "ruling 13"},
]


def digest_of(path: Path) -> str:
    return dataset_digest(read_records(path).records)


def write_jsonl(
    path: Path, records: list[dict[str, str]], *, newline: str = "\n", reverse_keys: bool = False
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(dict(reversed(r.items())) if reverse_keys else r) for r in records]
    path.write_bytes((newline.join(lines) + newline).encode())
    return path


def test_the_digest_is_a_tagged_sha256_of_the_canonical_lines() -> None:
    digest = dataset_digest(RECORDS)
    lines = canonical_records(RECORDS)
    assert lines == sorted(
        json.dumps(r, sort_keys=True, ensure_ascii=False, separators=(",", ":")) for r in RECORDS
    )
    assert digest == "sha256:" + hashlib.sha256(canonical_lines_bytes(lines)).hexdigest()
    assert untag(digest) == digest.removeprefix("sha256:")
    assert tag(untag(digest)) == digest


def test_same_records_same_digest_whatever_the_file(tmp_path: Path) -> None:
    reference = digest_of(write_jsonl(tmp_path / "a" / "rulings.jsonl", RECORDS))
    variants = [
        write_jsonl(tmp_path / "b" / "renamed-elsewhere.jsonl", RECORDS),
        write_jsonl(tmp_path / "keys.jsonl", RECORDS, reverse_keys=True),
        write_jsonl(tmp_path / "crlf.jsonl", RECORDS, newline="\r\n"),
        write_jsonl(tmp_path / "order.jsonl", list(reversed(RECORDS))),
    ]
    (tmp_path / "array.json").write_text(json.dumps(RECORDS, indent=4))
    variants.append(tmp_path / "array.json")
    assert [digest_of(path) for path in variants] == [reference] * len(variants)
    assert reference == dataset_digest(RECORDS)


def test_line_endings_inside_values_do_not_matter() -> None:
    windows = [{**RECORDS[0]}, {**RECORDS[1], "text": "Line one\r\nline two"}]
    old_mac = [{**RECORDS[0]}, {**RECORDS[1], "text": "Line one\rline two"}]
    assert dataset_digest(windows) == dataset_digest(old_mac) == dataset_digest(RECORDS)


@pytest.mark.parametrize(
    "changed",
    [
        [RECORDS[0], {**RECORDS[1], "text": "Line one\nline 2"}],  # one character
        [RECORDS[0]],  # a record fewer
        [*RECORDS, RECORDS[0]],  # a duplicated record counts
        [RECORDS[0], {**RECORDS[1], "source": None}],  # a field's value
        [RECORDS[0], {"text": RECORDS[1]["text"]}],  # a field fewer
    ],
)
def test_different_content_gives_a_different_digest(changed: list[dict[str, object]]) -> None:
    assert dataset_digest(changed) != dataset_digest(RECORDS)


def test_text_files_and_their_line_endings(tmp_path: Path) -> None:
    unix, windows = tmp_path / "notes.txt", tmp_path / "other-name.txt"
    unix.write_bytes(b"first paragraph\n\nsecond paragraph\n")
    windows.write_bytes(b"first paragraph\r\n\r\nsecond paragraph\r\n")
    assert digest_of(unix) == digest_of(windows)

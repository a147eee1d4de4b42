"""Reading data: every file format, every row shape, folders, and one-line errors for bad input."""

import json
from pathlib import Path

import pytest

from loraledger.trainer.datafiles import DataError, read_records

TEXT_ROWS = [{"text": "first document"}, {"text": "second document"}]
PAIR_ROWS = [{"prompt": "Q: what holds?", "completion": " the contract"}]
CHAT_ROWS = [
    {
        "messages": [
            {"role": "user", "content": "hello"},
            {"role": "assistant", "content": "hi there"},
        ]
    }
]


def write_jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def write_parquet(path: Path, rows: list[dict[str, object]]) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


@pytest.mark.parametrize("rows", [TEXT_ROWS, PAIR_ROWS, CHAT_ROWS], ids=["text", "prompt", "chat"])
@pytest.mark.parametrize("suffix", ["jsonl", "json", "parquet"])
def test_structured_formats_read_every_row_shape(tmp_path: Path, suffix: str, rows: list[dict]) -> None:
    path = tmp_path / f"data.{suffix}"
    if suffix == "jsonl":
        write_jsonl(path, rows)
    elif suffix == "json":
        path.write_text(json.dumps(rows))
    else:
        write_parquet(path, rows)
    loaded = read_records(path)
    assert loaded.records == rows
    assert loaded.format == suffix
    assert loaded.files == 1


def test_json_object_with_a_data_list(tmp_path: Path) -> None:
    path = tmp_path / "data.json"
    path.write_text(json.dumps({"data": TEXT_ROWS, "license": "cc-by"}))
    assert read_records(path).records == TEXT_ROWS


def test_csv_text_and_prompt_completion(tmp_path: Path) -> None:
    path = tmp_path / "pairs.csv"
    path.write_text('prompt,completion\n"Q: a, b?", yes\nQ: c?,no\n')
    assert read_records(path).records == [
        {"prompt": "Q: a, b?", "completion": " yes"},
        {"prompt": "Q: c?", "completion": "no"},
    ]
    texts = tmp_path / "texts.csv"
    texts.write_text("id,body\n1,some text\n")
    assert read_records(texts, text_field="body").records == [{"id": "1", "body": "some text"}]


def test_plain_text_files_are_one_document_each(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("line one\nline two\n")
    (tmp_path / "b.md").write_text("# Title\n\nbody\n")
    (tmp_path / "empty.txt").write_text("  \n")
    loaded = read_records(tmp_path)
    assert loaded.records == [{"text": "line one\nline two\n"}, {"text": "# Title\n\nbody\n"}]
    assert loaded.format == "text"


def test_folders_are_read_recursively_in_name_order(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    write_jsonl(tmp_path / "sub" / "b.jsonl", [{"text": "from b"}])
    write_jsonl(tmp_path / "a.jsonl", [{"text": "from a"}])
    write_parquet(tmp_path / "c.parquet", PAIR_ROWS)
    (tmp_path / "notes.bin").write_bytes(b"\x00")  # not a data file: ignored in folders
    loaded = read_records(tmp_path)
    assert loaded.records == [{"text": "from a"}, PAIR_ROWS[0], {"text": "from b"}]
    assert (loaded.files, loaded.format) == (3, "jsonl+parquet")


def test_a_custom_text_field(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [{"body": "x y"}])
    assert read_records(path, text_field="body").records == [{"body": "x y"}]
    with pytest.raises(DataError, match=r"line 1 has no 'text' field \(fields: body\)"):
        read_records(path)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("bad.jsonl", '{"text": "ok"}\n{"text": \n', r"bad.jsonl: malformed JSON on line 2"),
        ("list.jsonl", "[1, 2]\n", r"line 1 is a JSON list, expected an object"),
        ("empty.jsonl", "\n\n", r"the dataset is empty"),
        ("blank.jsonl", '{"text": "  "}\n', r"line 1: field 'text' is empty"),
        ("chat.jsonl", '{"messages": [{"role": "user"}]}\n', r"each message needs 'role' and a string"),
        ("wide.csv", "text\na,b\n", r"line 2 has more fields than the header"),
        ("data.xml", "<rows/>", r"unsupported file type '.xml'"),
    ],
)
def test_bad_input_is_one_clear_line(tmp_path: Path, name: str, content: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(DataError, match=message) as caught:
        read_records(path)
    assert "\n" not in str(caught.value)


def test_non_utf8_and_missing_files(tmp_path: Path) -> None:
    latin = tmp_path / "latin.txt"
    latin.write_bytes("ok\ncaf\xe9\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"not UTF-8 text \(invalid byte at line 2\)"):
        read_records(latin)
    with pytest.raises(DataError, match="data file not found"):
        read_records(tmp_path / "nope.jsonl")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="no data files"):
        read_records(empty)

"""Findings 2, 3 and 9 (data part) of issue 17: special files, deep nesting, huge fields, links that
leave a data folder, oversized documents, and hostile adapter folders on import."""

import json
import os
import socket
from pathlib import Path

import pytest
from support.hostile import train_args

from loraledger.trainer.datafiles import MAX_DEPTH, MAX_RECORD_CHARS, DataError, read_records


def test_a_fifo_is_refused_not_read(refused, tmp_path: Path, registry) -> None:  # type: ignore[no-untyped-def]
    fifo = tmp_path / "f.jsonl"
    os.mkfifo(fifo)
    expected = f"error: {fifo}: not a regular file (a FIFO): data must be files or folders of files"
    assert refused(*train_args("ip", "--data", str(fifo)), code=2) == expected
    assert refused("suite", "add", "ip", str(fifo), code=2) == expected
    assert refused("eval", "ip@1", "--data", str(fifo), code=2) == expected


def test_special_files_inside_a_data_folder_are_refused(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "a.jsonl").write_text('{"text": "fine"}\n')
    os.mkfifo(folder / "b.jsonl")
    with pytest.raises(DataError, match=r"b\.jsonl: not a regular file \(a FIFO\)"):
        read_records(folder)
    (folder / "b.jsonl").unlink()
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(folder / "c.jsonl"))
        with pytest.raises(DataError, match=r"c\.jsonl: not a regular file \(a socket\)"):
            read_records(folder)


def test_deep_nesting_names_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "deep.jsonl"
    path.write_text('{"text": "ok"}\n' + '{"text": "x", "n": ' + "[" * 10_000 + "]" * 10_000 + "}\n")
    with pytest.raises(DataError) as error:
        read_records(path)
    assert str(error.value) == f"{path}: line 2: nested deeper than {MAX_DEPTH} levels"
    shallow = tmp_path / "shallow.jsonl"
    shallow.write_text(json.dumps({"text": "x", "n": [[[[1]]]]}) + "\n")
    assert read_records(shallow).records[0]["n"] == [[[[1]]]]
    whole = tmp_path / "deep.json"
    whole.write_text("[" * 10_000 + "]" * 10_000)
    with pytest.raises(DataError, match=rf"deep\.json: line 1: nested deeper than {MAX_DEPTH} levels"):
        read_records(whole)


def test_a_large_csv_field_is_read_and_an_oversized_one_named(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    path.write_text("text\nshort\n" + "w" * 300_000 + "\n")
    assert [len(r["text"]) for r in read_records(path).records] == [5, 300_000]
    path.write_text("text\nshort\n" + "w" * (MAX_RECORD_CHARS + 1) + "\n")
    with pytest.raises(DataError) as error:
        read_records(path)
    assert str(error.value).startswith(f"{path}: line 3: the record holds more than {MAX_RECORD_CHARS:,}")


def test_an_oversized_document_is_refused_before_tokenizing(tmp_path: Path) -> None:
    path = tmp_path / "book.txt"
    path.write_text("word " * (MAX_RECORD_CHARS // 5 + 1))
    with pytest.raises(DataError, match=r"book\.txt: file: the record holds more than 16,000,000 characters"):
        read_records(path)
    lines = tmp_path / "book.jsonl"
    lines.write_text(json.dumps({"text": "w" * (MAX_RECORD_CHARS + 1)}) + "\n")
    with pytest.raises(DataError, match=r"book\.jsonl: line 1: the record holds more than"):
        read_records(lines)


def test_links_that_leave_a_data_folder_are_refused(tmp_path: Path) -> None:
    secret = tmp_path / "secret.jsonl"
    secret.write_text('{"text": "private"}\n')
    secret.chmod(0o600)
    folder = tmp_path / "data"
    (folder / "inner").mkdir(parents=True)
    (folder / "a.jsonl").write_text('{"text": "fine"}\n')
    (folder / "inner" / "b.jsonl").write_text('{"text": "also fine"}\n')
    (folder / "alias.jsonl").symlink_to(folder / "inner" / "b.jsonl")  # stays inside: read
    assert len(read_records(folder).records) == 3
    (folder / "leak.jsonl").symlink_to(secret)
    with pytest.raises(DataError, match=r"leak\.jsonl: a link to .*secret\.jsonl, outside"):
        read_records(folder)
    (folder / "leak.jsonl").unlink()
    (folder / "outside").symlink_to(tmp_path, target_is_directory=True)
    with pytest.raises(DataError, match=r"outside: a link to .*, outside"):
        read_records(folder)


def lora_folder(folder: Path, base: str) -> Path:
    folder.mkdir(parents=True)
    config = {"peft_type": "LORA", "r": 8, "lora_alpha": 16, "target_modules": ["q_proj", "v_proj"]}
    (folder / "adapter_config.json").write_text(json.dumps({**config, "base_model_name_or_path": base}))
    return folder


def test_a_deeply_nested_adapter_config_on_import(refused, tmp_path: Path, local_base: Path) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "adapter"
    folder.mkdir()
    (folder / "adapter_config.json").write_text(
        '{"peft_type": "LORA", "x": ' + "[" * 10_000 + "]" * 10_000 + "}"
    )
    (folder / "adapter_model.safetensors").write_bytes(b"never read")
    line = refused("import", "legal", str(folder), code=2)
    assert line == f"error: {folder}/adapter_config.json: line 1: nested deeper than {MAX_DEPTH} levels"


def test_a_truncated_safetensors_on_import(refused, tmp_path: Path, local_base: Path) -> None:  # type: ignore[no-untyped-def]
    import torch
    from safetensors.torch import save_file

    folder = lora_folder(tmp_path / "adapter", str(local_base))
    weights = folder / "adapter_model.safetensors"
    save_file({"base_model.model.layer.lora_A.weight": torch.zeros(8, 64)}, str(weights))
    weights.write_bytes(weights.read_bytes()[:-100])
    line = refused("import", "legal", str(folder), code=2)
    assert line.startswith(f"error: {weights}: not a readable safetensors file (")


def test_a_link_loop_or_dangling_link_in_a_data_folder(tmp_path: Path) -> None:
    """Found by tests/fuzz: a link to itself raised RuntimeError("Symlink loop") from Path.resolve."""
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "ok.jsonl").write_text('{"text": "fine"}\n')
    (folder / "loop.jsonl").symlink_to(folder / "loop.jsonl")
    with pytest.raises(DataError, match=r"loop\.jsonl: a link that leads nowhere \(dangling, or a loop\)"):
        read_records(folder)
    (folder / "loop.jsonl").unlink()
    (folder / "gone.jsonl").symlink_to(tmp_path / "nowhere")
    with pytest.raises(DataError, match=r"gone\.jsonl: a link that leads nowhere"):
        read_records(folder)

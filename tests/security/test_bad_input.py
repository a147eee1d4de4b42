"""Bad input of every kind: one line on stderr, a non-zero exit, no traceback, nothing registered.

The registry starts with a version ``ip@1`` on a small local base (registered without training), so
that refusals of a continuation can be checked against something real; the checks these inputs must
hit all come before any training.
"""

import json
import sqlite3
from pathlib import Path

import pytest
from support.refusals import TEXTS
from support.seeding import seed_version

from loraledger.fingerprints import fingerprint
from loraledger.registry import Registry
from loraledger.schemas.jobs import BaseSource
from loraledger.schemas.records import BaseModelRecord


def train(*args: str) -> tuple[str, ...]:
    return ("train", *args, "--max-length", "64", "--batch-tokens", "256", "--no-eval", "-q")


# ---- data files -----------------------------------------------------------------------------------


def test_malformed_jsonl_names_the_line(refused, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "one"}\n{"text": "two"}\n{"text": "three"\n{"text": "four"}\n')
    assert refused(*train("ip", "--data", str(bad))) == (
        f"error: {bad}: malformed JSON on line 3: Expecting ',' delimiter"
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("naïve résumé".encode("latin-1"), "not UTF-8 text (invalid byte at line 1)"),
        ('{"text": "utf-16"}\n'.encode("utf-16"), "not UTF-8 text"),
        (b"\x00\xff\xfe\x89PNG\r\n\x1a\n" * 100, "not UTF-8 text"),
        (b"", "the dataset is empty"),
        (b"\n  \n\t\n", "the dataset is empty"),
        (b'{"text": ""}\n', "field 'text' is empty"),
        (b'["a", "list"]\n', "line 1 is a JSON list, expected an object"),
        (b'{"title": "no text field"}\n', "line 1 has no 'text' field (fields: title)"),
        (
            b'{"text": "ok"}\n{"text": "half \\ud800 a character"}\n',
            "line 2 holds an escape for half a character",
        ),
    ],
    ids=[
        "latin-1",
        "utf-16",
        "binary",
        "empty",
        "blank-lines",
        "empty-text",
        "not-an-object",
        "no-text",
        "lone-surrogate",
    ],
)
def test_unusable_data_files(refused, tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "data.jsonl"
    path.write_bytes(content)
    assert message in refused(*train("ip", "--data", str(path)))


def test_a_very_long_malformed_line_gives_a_short_error(refused, tmp_path: Path) -> None:
    path = tmp_path / "long.jsonl"
    path.write_text('{"text": "ok"}\n' + '{"text": "' + "x" * 5_000_000 + "\n")
    line = refused(*train("ip", "--data", str(path)))
    assert "line 2" in line and "xxxx" not in line


def test_a_missing_data_file(refused, tmp_path: Path) -> None:
    assert refused(*train("ip", "--data", str(tmp_path / "nope.jsonl")), code=2).endswith("nope.jsonl")


def test_a_very_long_valid_line_is_read_whole(tmp_path: Path) -> None:
    from loraledger.registry.digests import dataset_digest
    from loraledger.trainer.datafiles import read_records

    text = "clause " * 1_000_000  # one 7 MB record: read and digested whole, never cut
    path = tmp_path / "long.jsonl"
    path.write_text(json.dumps({"text": "short"}) + "\n" + json.dumps({"text": text}) + "\n")
    loaded = read_records(path)
    assert [len(record["text"]) for record in loaded.records] == [5, len(text)]
    assert dataset_digest(loaded.records) == dataset_digest([{"text": text}, {"text": "short"}])


@pytest.mark.parametrize(
    ("base", "message"),
    [
        ("builtin:nope", "unknown built-in model 'builtin:nope': choose one of builtin:tiny"),
        ("/no/such/model", "unknown base model '/no/such/model': no such folder"),
        ("acme/no-such-model", "not a built-in, not a local folder, and the Hub could not be reached"),
    ],
)
def test_an_unknown_base(refused, data: Path, base: str, message: str) -> None:
    assert message in refused(*train("new", "--base", base, "--data", str(data)), code=3)


def test_tracebacks_only_with_the_groups_verbose_flag(adapters) -> None:
    from loraledger.cli.main import _verbose

    assert _verbose(["-v", "train"]) and _verbose(["-vv", "list"]) and _verbose(["--home", "h", "-v", "list"])
    assert not _verbose(["train", "x", "--note", "-v"]) and not _verbose(["--home", "-v", "list"])
    noted = adapters("train", "x", "--base", "builtin:nope", "--data", "d.jsonl", "--note", "-v")
    assert noted.exit_code != 0 and "Traceback" not in noted.output


# ---- bases and vocabularies ---------------------------------------------------------------------


def test_continuing_on_another_base(refused, data: Path) -> None:
    line = refused(*train("ip", "--base", "builtin:tiny-gpt2", "--data", str(data)), code=4)
    assert line.startswith("error: ip@1 was trained on ") and "not builtin:tiny-gpt2" in line


def lora_folder(folder: Path, base: str, weights_file: str = "adapter_model.safetensors") -> Path:
    folder.mkdir(parents=True)
    config = {"peft_type": "LORA", "r": 8, "lora_alpha": 16, "target_modules": ["q_proj", "v_proj"]}
    (folder / "adapter_config.json").write_text(json.dumps({**config, "base_model_name_or_path": base}))
    (folder / weights_file).write_bytes(b"never loaded: refused before")
    return folder


def test_importing_an_adapter_of_another_base(refused, tmp_path: Path) -> None:
    from support.tiny_models import bpe_tokenizer, save_base

    other = save_base(tmp_path / "gpt2", bpe_tokenizer(TEXTS, vocab_size=300), architecture="gpt2")
    adapter = lora_folder(tmp_path / "adapter", str(other))
    line = refused("import", "ip", str(adapter), code=4)
    assert line.startswith("error: ip@1 was trained on ") and "use another adapter name" in line


def test_importing_pickled_weights(refused, tmp_path: Path, local_base: Path) -> None:
    adapter = lora_folder(tmp_path / "adapter", str(local_base), weights_file="adapter_model.bin")
    assert "holds adapter_model.bin (a pickle" in refused("import", "legal", str(adapter), code=2)


def test_a_base_whose_vocabulary_changed_under_its_adapter(
    refused, registry: Registry, data: Path, tmp_path: Path
) -> None:
    """ip@2 continues from a version trained on a folder that now holds a model with another vocabulary."""
    from support.tiny_models import bpe_tokenizer, save_base

    moved = save_base(tmp_path / "base", bpe_tokenizer(TEXTS, vocab_size=300))
    seed_version(
        registry,
        "legal",
        weights=b"x",
        base=fingerprint(BaseSource(model_id=str(moved), path=moved), tmp_path / "cache"),
    )
    save_base(moved, bpe_tokenizer(TEXTS, vocab_size=280))  # the folder now holds another model
    line = refused(*train("legal", "--data", str(data)), code=4)
    assert line.startswith(f"error: the base {moved} no longer matches the one legal@1 was trained on")


def test_a_tokenizer_larger_than_the_embeddings(
    refused, data: Path, local_base: Path, tmp_path: Path
) -> None:
    import shutil

    from support.tiny_models import bpe_tokenizer

    folder = tmp_path / "mismatched"
    shutil.copytree(local_base, folder)
    rows = json.loads((folder / "config.json").read_text())["vocab_size"]
    larger = bpe_tokenizer([*TEXTS, "zebra quokka xylophone juxtaposed"], vocab_size=rows + 60)
    assert len(larger) > rows
    larger.save_pretrained(folder)  # the tokenizer of another model, with more tokens than embeddings
    line = refused(*train("other", "--base", str(folder), "--data", str(data)), code=4)
    assert f"its tokenizer has {len(larger)} tokens but the model has {rows} embeddings" in line


# ---- refs and names -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("show", "ip@"), "invalid ref 'ip@': nothing after '@'"),
        (("show", "ip@0"), "versions start at 1"),
        (("show", "ip@a/b"), "invalid alias 'a/b'"),
        (("show", "ip@9"), "ip@9 does not exist: ip has versions 1"),
        (("show", "nope"), "no adapter named 'nope'"),
        (("show", "ip@champion"), "no alias 'champion'"),
        (("rollback", "ip", "--to", "nope@1"), "no adapter named 'nope'"),
        (("verify", "ip@7"), "ip@7 does not exist"),
        (("train", "ip", "--from", "ip@5", "--data", "x.jsonl", "-q"), "ip@5 does not exist"),
    ],
)
def test_invalid_refs(refused, args: tuple[str, ...], message: str) -> None:
    assert message in refused(*args)


@pytest.mark.parametrize("name", ["../evil", "a/b", "..", ".hidden", "a..b", "/abs", "x\\y", "x" * 101])
def test_names_that_could_escape_a_folder(refused, name: str, data: Path, home: Path) -> None:
    assert "invalid adapter name" in refused(
        *train(name, "--base", "builtin:tiny", "--data", str(data)), code=2
    )
    assert "invalid alias" in refused("alias", "ip@1", name, code=2)
    assert not (home / "runs").exists() or not any((home / "runs").iterdir())
    assert not (home.parent / "evil").exists()


# ---- stored state -------------------------------------------------------------------------------


def test_a_database_of_a_newer_schema(refused, home: Path, data: Path) -> None:
    with sqlite3.connect(home / "registry.db") as connection:
        connection.execute("UPDATE alembic_version SET version_num = '9999'")
    for args in (("list",), train("ip", "--data", str(data)), ("verify",), ("gc", "--yes")):
        line = refused(*args, code=4)
        assert "was written by a newer loraledger (schema 9999" in line and "upgrade loraledger" in line
    with sqlite3.connect(home / "registry.db") as connection:  # left exactly as it was
        assert connection.execute("SELECT version_num FROM alembic_version").fetchall() == [("9999",)]
        assert connection.execute("SELECT count(*) FROM version").fetchall() == [(1,)]


def test_continuing_from_a_corrupt_artifact(refused, registry: Registry, data: Path) -> None:
    files = registry.artifacts.manifest(registry.resolve("ip@1").artifact_digest)
    Path(registry.artifacts.blob_path(files["adapter_model.safetensors"])).write_bytes(b"not a real adaptr")
    line = refused(*train("ip", "--data", str(data)), code=5)
    assert line.startswith("error: ip@1: adapter_model.safetensors (blob sha256:")
    assert line.endswith("is corrupt: refusing to load it (see `adapters verify ip@1`)")


def test_continuing_from_pickled_weights(
    refused, registry: Registry, base_record: BaseModelRecord, data: Path
) -> None:
    seed_version(registry, "old", weights=b"pickle", base=base_record, weights_file="adapter_model.bin")
    line = refused(*train("old", "--data", str(data)), code=2)
    assert "holds pickled weights (adapter_model.bin)" in line and "--allow-pickle" in line


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("ADAPTERS_STORE", "nosuchprotocol://bucket/x", "cannot open the artifact store"),
        ("ADAPTERS_DB", "mysql://nobody@nowhere/x", "unsupported database 'mysql'"),
        ("ADAPTERS_FAULT", "nowhere:kill", "invalid ADAPTERS_FAULT item"),
    ],
)
def test_bad_configuration(
    refused, monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)
    assert message in refused("verify")

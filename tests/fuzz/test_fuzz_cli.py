"""Names, refs, aliases, reasons and notes, data files, adapter folders, recipes and destinations,
fuzzed through the in-process CLI (and the library where the CLI would spend minutes on a model)."""

import json
import os
from pathlib import Path

from hypothesis import assume, given
from hypothesis import strategies as st
from support.hostile import assert_refusal, control_free

from loraledger.registry import Registry
from loraledger.schemas.errors import InvalidInput

# Text a user can type or a file can hold: every code point but surrogates (argv cannot carry them),
# with control characters, separators and the name alphabet over-represented.
TEXT = st.text(
    alphabet=st.one_of(
        st.sampled_from("abc019._-@/\\ \n\r\t\x00\x1b\x7f\x9b\u202e|[]`<>&~"),
        st.characters(exclude_categories=("Cs",)),
    ),
    max_size=40,
).filter(lambda text: "\x00" not in text)  # argv cannot carry NUL either


@given(name=TEXT)
def test_refs_and_names(adapters, registry: Registry, name: str) -> None:  # type: ignore[no-untyped-def]
    before = [version.ref for version in registry.store.versions()]
    for args in (("show", "--", name), ("lineage", "--", name), ("history", "--", name)):
        assert_refusal(adapters(*args))
    assert_refusal(adapters("alias", "--", "ip@1", name))
    assert_refusal(adapters("train", "--data", "/nonexistent.jsonl", "-q", "--", name), allowed_success=False)
    assert [version.ref for version in registry.store.versions()] == before


@given(reason=TEXT, user=TEXT)
def test_reasons_and_users_never_reach_a_terminal_raw(
    adapters, registry: Registry, reason: str, user: str, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("ADAPTERS_USER", user or "x")
    assert_refusal(adapters("alias", "ip@1", "champion", "--reason", reason))
    for args in (("history", "ip"), ("show", "ip@champion"), ("list",), ("list", "ip")):
        result = adapters(*args)
        assert result.exit_code == 0 and control_free(result.output), (args, result.output)
    moves = json.loads(adapters("history", "ip", "--json").stdout)
    assert moves[-1]["reason"] == (reason or None) or moves[-1]["reason"] == reason


SUFFIXES = [".jsonl", ".json", ".csv", ".txt", ".md", ".parquet", ".ndjson"]


def nested(depth: int) -> str:
    return '{"text": "x", "n": ' + "[" * depth + "]" * depth + "}"


CONTENT = st.one_of(
    st.binary(max_size=300),
    st.builds(lambda d: nested(d).encode(), st.integers(min_value=90, max_value=5000)),
    st.builds(lambda n: b"text\n" + b"w" * n + b"\n", st.integers(min_value=100_000, max_value=400_000)),
    st.builds(lambda t: json.dumps({"text": t}).encode(), TEXT),
    st.builds(lambda t: t.encode("utf-8", "surrogatepass"), TEXT),
)


@given(suffix=st.sampled_from(SUFFIXES), content=CONTENT)
def test_data_files_of_every_format(
    adapters, registry: Registry, tmp_path: Path, suffix: str, content: bytes
) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / f"fuzz{suffix}"
    path.write_bytes(content)
    before = adapters("suite", "list", "ip", "--json").stdout
    result = adapters("suite", "add", "ip", str(path))
    assert_refusal(result)
    if result.exit_code != 0:
        assert adapters("suite", "list", "ip", "--json").stdout == before


@given(
    kind=st.sampled_from(["fifo", "socket", "dir", "dangling", "outside", "loop"]),
    suffix=st.sampled_from(SUFFIXES),
)
def test_special_files_and_links(
    adapters, registry: Registry, tmp_path: Path, kind: str, suffix: str
) -> None:  # type: ignore[no-untyped-def]
    import socket

    folder = tmp_path / f"data-{kind}{suffix.replace('.', '-')}"
    if folder.exists():
        return  # hypothesis may repeat an example on the same tmp_path
    folder.mkdir()
    (folder / "ok.jsonl").write_text('{"text": "fine"}\n')
    entry = folder / f"entry{suffix}"
    if kind == "fifo":
        os.mkfifo(entry)
    elif kind == "socket":
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(entry))
        sock.close()
    elif kind == "dir":
        entry.mkdir()
    elif kind == "dangling":
        entry.symlink_to(tmp_path / "nowhere")
    elif kind == "outside":
        (tmp_path / "private.jsonl").write_text('{"text": "secret"}\n')
        entry.symlink_to(tmp_path / "private.jsonl")
    else:
        entry.symlink_to(entry)
    for target in (folder, entry):
        assert_refusal(adapters("suite", "add", "ip", str(target)))
        assert "secret" not in json.dumps(adapters("suite", "list", "ip", "--json").stdout)


CONFIG = st.one_of(
    st.binary(max_size=200),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXT,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
        max_leaves=10,
    ).map(
        lambda value: json.dumps(
            {"peft_type": "LORA", "r": value, "lora_alpha": value, "target_modules": value}
        ).encode()
    ),
    st.builds(
        lambda d: ('{"peft_type": "LORA", "x": ' + "[" * d + "]" * d + "}").encode(), st.integers(90, 5000)
    ),
)


@given(config=CONFIG, weights=st.binary(max_size=64))
def test_adapter_folders_for_import(
    adapters, registry: Registry, tmp_path: Path, config: bytes, weights: bytes
) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "adapter"
    folder.mkdir(exist_ok=True)
    (folder / "adapter_config.json").write_bytes(config)
    (folder / "adapter_model.safetensors").write_bytes(weights)
    before = adapters("list", "--json").stdout
    assert_refusal(adapters("import", "fuzzed", str(folder)), allowed_success=False)
    assert adapters("list", "--json").stdout == before


RECIPE = st.one_of(
    st.binary(max_size=200),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | TEXT,
        lambda inner: (
            st.lists(inner, max_size=3)
            | st.dictionaries(
                st.sampled_from(
                    [
                        "lora",
                        "training",
                        "eval",
                        "r",
                        "epochs",
                        "warmup",
                        "learning_rate",
                        "chat_template",
                        "x",
                    ]
                ),
                inner,
                max_size=3,
            )
        ),
        max_leaves=12,
    ).map(lambda value: json.dumps(value, default=str).encode()),
    st.builds(lambda d: ("a: " + "[" * d + "]" * d).encode(), st.integers(90, 200)),
)


@given(content=RECIPE, suffix=st.sampled_from([".yaml", ".json", ".yml"]))
def test_recipe_files(tmp_path: Path, content: bytes, suffix: str) -> None:
    """At the library level: a valid recipe would start a training run (minutes), an invalid one must
    be one line."""
    from loraledger.recipes import build_recipe, load_recipe

    path = tmp_path / f"recipe{suffix}"
    path.write_bytes(content)
    try:
        build_recipe(load_recipe(path), {}, source=str(path))
    except InvalidInput as exc:
        assert "\n" not in str(exc) and len(str(exc)) < 1000


@given(dest=TEXT)
def test_destination_paths(adapters, registry: Registry, tmp_path: Path, dest: str, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """An export writes under DEST only (here: under the working folder), or refuses in one line."""
    from loraledger.schemas.records import NewVersion

    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    monkeypatch.chdir(work)
    if "ex" not in [a.name for a in registry.adapters()]:
        folder = tmp_path / "adapter-ex"
        folder.mkdir()
        (folder / "adapter_model.safetensors").write_bytes(b"w")
        (folder / "adapter_config.json").write_text('{"peft_type": "LORA", "r": 4, "lora_alpha": 8}')
        registry.register(
            NewVersion(
                name="ex",
                kind="import",
                base=registry.resolve("ip@1").base,
                artifact_digest=registry.put_artifact(folder),
            )
        )
    outside_before = sorted(p.name for p in tmp_path.iterdir())
    relative = dest.lstrip("/~")  # absolute paths would leave the sandbox by design
    assume(".." not in Path(relative).parts)  # so would a way up: both are the user's to name
    # --out=VALUE: a value starting with '-' is the folder's name, not an option.
    result = adapters("export", "ex@1", f"--out={relative}", "--format", "vllm", "--force")
    assert_refusal(result)
    assert sorted(p.name for p in tmp_path.iterdir()) == outside_before
    for path in work.rglob("*"):
        assert path.resolve().is_relative_to(work.resolve())

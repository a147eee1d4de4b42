"""Findings 1, 5 and 7 of issue 17: names that end in a newline, control characters reaching a
terminal, and internal errors that escaped as tracebacks or several lines."""

import json
from pathlib import Path

import pytest
from support.hostile import train_args

from loraledger.registry import Registry

ESC = "\x1b"
HOSTILE = f"{ESC}]0;pwned{chr(7)}{ESC}[2J{ESC}[31mred\x9b1m\rline\nnext"


# ---- 1. names: a full match, not a match up to a trailing newline ------------------------------


@pytest.mark.parametrize("name", ["abc\n", "abc\r", "current\n", "a\x00b", " abc", "abc "])
def test_a_trailing_newline_is_not_part_of_a_valid_name(refused, name: str, data: Path, home: Path) -> None:
    assert "invalid alias" in refused("alias", "ip@1", name, code=2)
    assert "invalid adapter name" in refused(
        *train_args(name, "--base", "builtin:tiny", "--data", str(data)), code=2
    )
    assert not (home / "runs").exists() or not any((home / "runs").iterdir())


def test_a_ref_with_a_newline_after_the_selector_is_refused(refused) -> None:
    assert "invalid alias" in refused("show", "ip@cur\nrent", code=2)
    assert "invalid adapter name" in refused("show", "ip\n@1", code=2)


def test_the_history_holds_no_spoofed_move(adapters, refused, registry: Registry) -> None:
    refused("alias", "ip@1", "current\n", code=2)
    moves = json.loads(adapters("history", "ip", "--json").stdout)
    assert [move["alias"] for move in moves] == ["current"]


# ---- 5. control characters never reach a terminal; --json keeps the exact text ------------------


def _control_free(text: str) -> bool:
    return not any((ord(c) < 32 and c != "\n") or 0x7F <= ord(c) < 0xA0 for c in text)


def test_a_hostile_reason_and_user_are_escaped_in_history(
    adapters, registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    from support.seeding import seed_version

    seed_version(
        registry, "ip", weights=b"two", parent="ip@1", promote=False, base=registry.resolve("ip@1").base
    )
    monkeypatch.setenv("ADAPTERS_USER", f"mallory{ESC}[2J")
    assert adapters("alias", "ip@2", "champion", "--reason", HOSTILE).exit_code == 0
    table = adapters("history", "ip")
    assert table.exit_code == 0 and _control_free(table.output), repr(table.output)
    assert "\\x1b]0;pwned" in table.stdout and "mallory\\x1b[2J" in table.stdout
    # One row per move: the reason's line break does not start a row of its own.
    assert len([line for line in table.stdout.splitlines() if "champion" in line]) == 1
    moves = json.loads(adapters("history", "ip", "--json").stdout)
    assert moves[-1]["reason"] == HOSTILE and moves[-1]["created_by"] == f"mallory{ESC}[2J"


def test_a_hostile_note_is_escaped_in_show_and_list(adapters, registry: Registry, tmp_path: Path) -> None:
    from support.seeding import BASE

    from loraledger.schemas.records import NewVersion

    folder = tmp_path / "adapter"
    folder.mkdir()
    (folder / "adapter_model.safetensors").write_bytes(b"x")
    (folder / "adapter_config.json").write_text("{}")
    registry.register(
        NewVersion(
            name="noted",
            kind="import",
            base=BASE,
            artifact_digest=registry.put_artifact(folder),
            note=HOSTILE,
        )
    )
    for args in (("show", "noted@1"), ("list",), ("list", "noted"), ("lineage", "noted")):
        result = adapters(*args)
        assert result.exit_code == 0, result.output
        assert _control_free(result.output), (args, result.output)
    assert json.loads(adapters("show", "noted@1", "--json").stdout)["note"] == HOSTILE


def test_an_error_line_escapes_what_the_user_gave(adapters, registry: Registry, tmp_path: Path) -> None:
    result = adapters("suite", "add", "ip", str(tmp_path / f"missing{ESC}[2J.jsonl"))
    assert result.exit_code != 0 and _control_free(result.stderr), repr(result.stderr)
    # Shown, not sent (click drops ESC sequences only when stderr is not a terminal).
    assert "missing\\x1b[2J.jsonl" in result.stderr and len(result.stderr.splitlines()) == 1


def test_printable_escapes_every_control_character() -> None:
    from loraledger.cli.terminal import printable

    assert printable("ok text, ünïcode") == "ok text, ünïcode"
    assert printable(HOSTILE) == ("\\x1b]0;pwned\\x07\\x1b[2J\\x1b[31mred\\x9b1m\\rline\\nnext")
    assert printable("a\nb", keep_newlines=True) == "a\nb"
    assert printable("\u202eevil") == "\\u202eevil"
    assert printable(printable(HOSTILE)) == printable(HOSTILE)


# ---- 7. internal errors become one clear line ---------------------------------------------------


def test_an_overflowing_version_number(refused) -> None:
    line = refused("show", "ip@99999999999999999999", code=3)
    assert "ip@99999999999999999999 does not exist" in line


def read_only(home: Path) -> str:
    """The registry opened read-only, as a file without write permission is (which a test running as
    root cannot use: root writes anyway)."""
    return f"sqlite:///file:{home / 'registry.db'}?mode=ro&uri=true"


def test_a_read_only_database(
    refused, registry: Registry, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry.store.engine.dispose()
    monkeypatch.setenv("ADAPTERS_DB", read_only(home))
    line = refused("suite", "threshold", "ip", "0.1", code=1)
    assert line.startswith(f"error: the registry database file:{home}/registry.db") and "is read-only" in line


def test_a_corrupt_database(refused, registry: Registry, home: Path) -> None:
    registry.store.engine.dispose()
    for suffix in ("-wal", "-shm"):
        (home / f"registry.db{suffix}").unlink(missing_ok=True)
    (home / "registry.db").write_bytes(b"this is not a database" * 200)
    for args in (("list",), ("show", "ip@1")):
        line = refused(*args, code=5)
        assert line.startswith(f"error: {home}/registry.db is not a readable registry database")


def test_markup_in_a_message_is_shown_not_parsed(capsys) -> None:  # type: ignore[no-untyped-def]
    """A path holding "[/x]" in a warning raised rich's MarkupError (an unexpected error, exit 1)."""
    from loraledger.cli import output

    output.reset()
    output.warn("data under /tmp/[/bold]odd[red]")
    output.note("wrote /tmp/[/x].json")
    assert capsys.readouterr().err.splitlines() == [
        "warning: data under /tmp/[/bold]odd[red]",
        "wrote /tmp/[/x].json",
    ]

"""Destinations are `--out DIR` on every command that writes files (merge, export, report); export's
older positional DEST stays as an alias, and a missing or doubled destination is one clear error."""

from pathlib import Path


def test_export_needs_one_destination(adapters, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    missing = adapters("export", "legal@1")
    assert missing.exit_code == 2
    assert missing.stderr.strip() == "error: where to? pass --out DIR (the export is written as DIR/NAME-vN)"

    doubled = adapters("export", "legal@1", str(tmp_path / "a"), "--out", str(tmp_path / "b"))
    assert doubled.exit_code == 2
    assert "two destinations" in doubled.stderr and "Traceback" not in doubled.stderr


def test_both_spellings_reach_the_ref(adapters, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "out"
    for args in (["--out", str(out)], [str(out)], [str(out), "--out", str(out)]):
        result = adapters("export", "legal@1", *args)
        assert result.exit_code == 3, result.output  # parsed; the registry has no legal
        assert result.stderr.startswith("error: ") and "legal" in result.stderr
    assert not out.exists()


def test_every_writing_command_takes_out() -> None:
    from loraledger.cli.main import cli

    for name in ("merge", "export", "report"):
        command = cli.commands[name]
        assert any("--out" in param.opts for param in command.params), name

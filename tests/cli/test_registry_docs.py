"""The docs' "The registry" page (docs/registry.md) documents every command and option of the registry's
commands (cli/commands/browse.py, cli/commands/aliases.py); "Storage and teams" (docs/storage.md) the
PostgreSQL upgrade."""

from pathlib import Path

import click
import pytest

from loraledger.cli.commands import aliases, browse

DOCS = Path(__file__).resolve().parents[2] / "docs"


def section() -> str:
    return (DOCS / "registry.md").read_text()


@pytest.mark.parametrize("command", [*browse.COMMANDS, *aliases.COMMANDS], ids=lambda c: str(c.name))
def test_command_and_options_are_documented(command: click.Command) -> None:
    text = section()
    assert f"adapters {command.name} " in text
    options = [opt for param in command.params for opt in [*param.opts, *param.secondary_opts]]
    assert [opt for opt in options if opt.startswith("--") and opt not in text] == []


def test_postgresql_setup_is_documented() -> None:
    text = (DOCS / "storage.md").read_text()
    for words in ("ADAPTERS_DB=postgresql+psycopg://", "adapters db upgrade", "adapters db status"):
        assert words in text

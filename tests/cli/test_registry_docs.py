"""The README's "The registry" section documents every command and option of the registry's commands
(cli/commands/browse.py, cli/commands/aliases.py) and the PostgreSQL upgrade."""

from pathlib import Path

import click
import pytest

from loraledger.cli.commands import aliases, browse

README = Path(__file__).resolve().parents[2] / "README.md"


def section() -> str:
    text = README.read_text()
    return text[text.index("## The registry") :].split("\n## ", 1)[0]


@pytest.mark.parametrize("command", [*browse.COMMANDS, *aliases.COMMANDS], ids=lambda c: str(c.name))
def test_command_and_options_are_documented(command: click.Command) -> None:
    text = section()
    assert f"adapters {command.name} " in text
    options = [opt for param in command.params for opt in [*param.opts, *param.secondary_opts]]
    assert [opt for opt in options if opt.startswith("--") and opt not in text] == []


def test_postgresql_setup_is_documented() -> None:
    text = section()
    for words in ("ADAPTERS_DB=postgresql+psycopg://", "adapters db upgrade", "adapters db status"):
        assert words in text

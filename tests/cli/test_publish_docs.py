"""The README's "Stacking, merging and publishing" section documents every command and option of
cli/commands/publish.py."""

from pathlib import Path

import pytest

from loraledger.cli.commands.publish import COMMANDS

README = Path(__file__).resolve().parents[2] / "README.md"


def section() -> str:
    text = README.read_text()
    return text[text.index("## Stacking, merging and publishing") :].split("\n## ", 1)[0]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda command: str(command.name))
def test_command_and_options_are_documented(command) -> None:  # type: ignore[no-untyped-def]
    text = section()
    assert f"adapters {command.name} " in text
    options = [opt for param in command.params for opt in [*param.opts, *param.secondary_opts]]
    missing = [
        opt for opt in options if opt.startswith("--") and opt not in ("--json", "--note") and opt not in text
    ]
    assert missing == []

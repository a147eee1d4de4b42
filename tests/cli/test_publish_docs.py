"""The docs' "Stacking, merging and publishing" page (docs/publishing.md) documents every command and
option of cli/commands/publish.py."""

from pathlib import Path

import pytest

from loraledger.cli.commands.publish import COMMANDS

PAGE = Path(__file__).resolve().parents[2] / "docs" / "publishing.md"


def section() -> str:
    return PAGE.read_text()


@pytest.mark.parametrize("command", COMMANDS, ids=lambda command: str(command.name))
def test_command_and_options_are_documented(command) -> None:  # type: ignore[no-untyped-def]
    text = section()
    assert f"adapters {command.name} " in text
    options = [opt for param in command.params for opt in [*param.opts, *param.secondary_opts]]
    missing = [
        opt for opt in options if opt.startswith("--") and opt not in ("--json", "--note") and opt not in text
    ]
    assert missing == []

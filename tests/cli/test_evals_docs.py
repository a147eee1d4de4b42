"""The docs' "Evaluation and forgetting" page (docs/evaluation.md) documents every command and option of
cli/commands/evals.py (eval, evals, suite add/list/threshold, report) and what BWT's sign means."""

from pathlib import Path

import click
import pytest

from loraledger.cli.commands import evals

PAGE = Path(__file__).resolve().parents[2] / "docs" / "evaluation.md"


def section() -> str:
    return PAGE.read_text()


def commands() -> list[tuple[str, click.Command]]:
    found = []
    for command in evals.COMMANDS:
        if isinstance(command, click.Group):
            found += [(f"{command.name} {name}", sub) for name, sub in command.commands.items()]
        else:
            found.append((str(command.name), command))
    return found


@pytest.mark.parametrize(("name", "command"), commands(), ids=[name for name, _ in commands()])
def test_command_and_options_are_documented(name: str, command: click.Command) -> None:
    text = section()
    assert f"adapters {name} " in text
    options = [opt for param in command.params for opt in [*param.opts, *param.secondary_opts]]
    assert [
        opt for opt in options if opt.startswith("--") and opt not in ("--help",) and opt not in text
    ] == []


def test_the_signs_are_explained() -> None:
    text = section()
    assert "lower is better" in text
    assert "Positive BWT means forgetting" in text

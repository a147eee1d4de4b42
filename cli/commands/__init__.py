"""Command modules, one per group of related commands. Each imports only click at module level."""

import click

from loraledger.cli.commands import aliases, browse, demo, evals, maintenance, publish, serving, training, ui


def register_commands(group: click.Group) -> None:
    for module in (training, browse, evals, aliases, maintenance, publish, serving, ui, demo):
        for command in module.COMMANDS:
            group.add_command(command)

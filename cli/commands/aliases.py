"""Moving pointers: alias, promote, rollback. Every move is recorded with who, when and why."""

from typing import TYPE_CHECKING

import click

from loraledger.cli.options import pass_ledger, reason_option
from loraledger.cli.output import out

if TYPE_CHECKING:
    from loraledger.ledger import Ledger


@click.command()
@click.argument("ref")
@click.argument("alias")
@click.option("--delete", is_flag=True, help="Remove ALIAS from the adapter instead.")
@reason_option
@pass_ledger
def alias(ledger: "Ledger", ref: str, alias: str, delete: bool, reason: str | None) -> None:
    """Point ALIAS (e.g. champion, staging) at REF."""
    event = ledger.alias(ref, alias, reason=reason, delete=delete)
    if delete:
        out().print(f"removed {event.name}@{alias} (was version {event.from_version})")
    else:
        out().print(f"{event.name}@{alias} -> {event.name}@{event.to_version}")


@click.command()
@click.argument("ref")
@reason_option
@pass_ledger
def promote(ledger: "Ledger", ref: str, reason: str | None) -> None:
    """Make REF the current version (overrides the forgetting gate by hand)."""
    event = ledger.promote(ref, reason=reason)
    before = f"{event.name}@{event.from_version}" if event.from_version else "nothing"
    out().print(f"{event.name}@current: {before} -> {event.name}@{event.to_version}")


@click.command()
@click.argument("name")
@click.option("--to", "target", metavar="REF", help="Version to return to (default: the parent of current).")
@reason_option
@pass_ledger
def rollback(ledger: "Ledger", name: str, target: str | None, reason: str | None) -> None:
    """Move NAME's current version back; the abandoned version stays listed."""
    event = ledger.rollback(name, to=target, reason=reason)
    out().print(f"rolled back {name}@current: {name}@{event.from_version} -> {name}@{event.to_version}")


COMMANDS = [alias, promote, rollback]

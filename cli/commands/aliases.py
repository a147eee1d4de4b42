"""Moving pointers: alias, promote, rollback. Every move is recorded with who, when and why."""

import click

from loraledger.cli.output import out
from loraledger.settings import Settings

reason_option = click.option("--reason", help="Why: recorded in the alias history.")


@click.command()
@click.argument("ref")
@click.argument("alias")
@click.option("--delete", is_flag=True, help="Remove ALIAS from the adapter instead.")
@reason_option
@click.pass_obj
def alias(settings: Settings, ref: str, alias: str, delete: bool, reason: str | None) -> None:
    """Point ALIAS (e.g. champion, staging) at REF."""
    registry = settings.open_registry()
    if delete:
        event = registry.remove_alias(ref.partition("@")[0], alias, reason=reason)
        out().print(f"removed {event.name}@{alias} (was version {event.from_version})")
        return
    event = registry.set_alias(ref, alias, reason=reason)
    out().print(f"{event.name}@{alias} -> {event.name}@{event.to_version}")


@click.command()
@click.argument("ref")
@reason_option
@click.pass_obj
def promote(settings: Settings, ref: str, reason: str | None) -> None:
    """Make REF the current version (overrides the forgetting gate by hand)."""
    event = settings.open_registry().promote(ref, reason=reason)
    before = f"{event.name}@{event.from_version}" if event.from_version else "nothing"
    out().print(f"{event.name}@current: {before} -> {event.name}@{event.to_version}")


@click.command()
@click.argument("name")
@click.option("--to", "target", metavar="REF", help="Version to return to (default: the parent of current).")
@reason_option
@click.pass_obj
def rollback(settings: Settings, name: str, target: str | None, reason: str | None) -> None:
    """Move NAME's current version back; the abandoned version stays listed."""
    event = settings.open_registry().rollback(name, to=target, reason=reason)
    out().print(f"rolled back {name}@current: {name}@{event.from_version} -> {name}@{event.to_version}")


COMMANDS = [alias, promote, rollback]

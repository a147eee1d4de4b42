"""Keeping the registry healthy: schema upgrades, integrity checks, garbage collection."""

from typing import TYPE_CHECKING

import click

from loraledger.cli.options import json_option, pass_ledger
from loraledger.cli.output import out, print_json, warn

if TYPE_CHECKING:
    from loraledger.ledger import Ledger


@click.group()
def db() -> None:
    """Registry database schema."""


@db.command()
@pass_ledger
def upgrade(ledger: "Ledger") -> None:
    """Migrate the database (e.g. PostgreSQL in ADAPTERS_DB) to this version's schema."""
    before, after = ledger.upgrade_schema()
    out().print(f"schema {before or 'empty'} -> {after}" if before != after else f"schema already at {after}")


@db.command()
@pass_ledger
def status(ledger: "Ledger") -> None:
    """Show the database URL and schema revision."""
    schema = ledger.schema_status()
    out().print(f"{schema.url}: schema {schema.revision or 'empty'} (code: {schema.head})")


@click.command()
@click.argument("ref", required=False)
@json_option
@pass_ledger
def verify(ledger: "Ledger", ref: str | None, as_json: bool) -> None:
    """Re-hash stored adapters and dataset copies; report missing or corrupt ones.

    REF checks one version (its files and the datasets it used); without it, everything registered.
    Exits 0 when all is sound, 5 when something is corrupt, 3 when something is only missing.
    """
    from loraledger.cli.integrity import verify_json, verify_lines
    from loraledger.schemas.errors import Corrupt, NotFound

    report = ledger.verify(ref)
    if as_json:
        print_json(verify_json(report))
    else:
        print_lines(verify_lines(report))
    if not report.ok:
        damage = (
            f"{len(report.problems)} stored object(s) damaged "
            f"({report.corrupt} corrupt, {report.missing} missing)"
        )
        raise Corrupt(damage) if report.corrupt else NotFound(damage)


@click.command()
@click.option("--yes", is_flag=True, help="Delete the unreferenced objects (default: only list them).")
@click.option(
    "--min-age",
    default="1d",
    show_default=True,
    metavar="AGE",
    help="Spare objects younger than AGE (0, 90s, 30m, 2h, 1d): a run in progress stores its adapter "
    "shortly before registering it.",
)
@json_option
@pass_ledger
def gc(ledger: "Ledger", yes: bool, min_age: str, as_json: bool) -> None:
    """List stored objects no version or dataset refers to; delete them with --yes.

    They are what a crashed or refused run leaves behind: blobs and manifests written before the
    registration that never came, and temporary files of interrupted writes.
    """
    from loraledger.cli.integrity import garbage_json, garbage_lines

    report = ledger.garbage(min_age_seconds=parse_age(min_age), delete=yes)
    if as_json:
        print_json(garbage_json(report, deleted=yes))
    else:
        print_lines(garbage_lines(report, deleted=yes))
    if report.damaged_manifests:
        warn(
            f"{report.damaged_manifests} registered artifact(s) are missing or corrupt, so no blob was "
            "counted as garbage: run `adapters verify`"
        )


def print_lines(lines: list[str]) -> None:
    """Report lines hold digests and paths: never wrapped, never read as markup."""
    for line in lines:
        out().print(line, markup=False, highlight=False, soft_wrap=True)


def parse_age(text: str) -> float:
    """Seconds in ``0``, ``90``, ``90s``, ``30m``, ``2h``, ``1d``."""
    import re

    from loraledger.schemas.errors import InvalidInput

    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([smhd]?)\s*", text)
    if not match:
        raise InvalidInput(f"invalid --min-age {text!r}: use a number with s, m, h or d (e.g. 30m, 1d)")
    return float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]


COMMANDS = [db, verify, gc]

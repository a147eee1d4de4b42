"""Keeping the registry healthy: schema upgrades, integrity checks, garbage collection."""

import click

from loraledger.cli.output import out
from loraledger.cli.settings import Settings


@click.group()
def db() -> None:
    """Registry database schema."""


@db.command()
@click.pass_obj
def upgrade(settings: Settings) -> None:
    """Migrate the database (e.g. PostgreSQL in ADAPTERS_DB) to this version's schema."""
    from loraledger.registry.engine import make_engine
    from loraledger.registry.migrate import upgrade as run_upgrade

    before, after = run_upgrade(make_engine(settings.db_url))
    out().print(f"schema {before or 'empty'} -> {after}" if before != after else f"schema already at {after}")


@db.command()
@click.pass_obj
def status(settings: Settings) -> None:
    """Show the database URL and schema revision."""
    from loraledger.registry.engine import make_engine
    from loraledger.registry.migrate import HEAD, current_revision

    engine = make_engine(settings.db_url)
    with engine.connect() as connection:
        revision = current_revision(connection)
    out().print(
        f"{engine.url.render_as_string(hide_password=True)}: schema {revision or 'empty'} (code: {HEAD})"
    )


COMMANDS = [db]

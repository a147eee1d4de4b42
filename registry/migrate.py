"""Schema versioning: auto-upgrade embedded SQLite, explicit upgrade elsewhere, refuse newer schemas.

Opening a registry only reads ``alembic_version`` (cheap, keeps ``adapters list`` fast); alembic itself
is imported only when a migration has to run.
"""

from pathlib import Path

from sqlalchemy import Connection, Engine, inspect, text

from loraledger.registry.engine import WRITE
from loraledger.registry.errors import SchemaMismatch

# The newest migration this code knows. A test keeps it equal to alembic's head.
HEAD = "0003"
KNOWN = ("0001", "0002", "0003")
MIGRATIONS = Path(__file__).parent / "migrations"
# Key of the PostgreSQL advisory lock held while migrating (any constant unique to loraledger).
MIGRATION_LOCK = 0x10A_1ED6E2


def current_revision(connection: Connection) -> str | None:
    if not inspect(connection).has_table("alembic_version"):
        return None
    row = connection.execute(text("SELECT version_num FROM alembic_version")).first()
    return None if row is None else str(row[0])


def upgrade(engine: Engine) -> tuple[str | None, str]:
    """Bring the schema to HEAD; returns (revision before, revision after).

    Runs in one write transaction that first takes the database's write lock (``BEGIN IMMEDIATE`` on
    SQLite, an advisory lock on PostgreSQL) and only then reads the revision, so that several processes
    opening a new registry at once migrate it once: the others wait, then find it at HEAD."""
    from alembic import command
    from alembic.config import Config

    with engine.execution_options(**WRITE).begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        before = current_revision(connection)
        _refuse_newer(before, engine)
        if before == HEAD:
            return before, HEAD
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
    return before, HEAD


def ensure_schema(engine: Engine, *, auto_upgrade: bool) -> None:
    """Check the schema revision; migrate if allowed, else explain how."""
    with engine.connect() as connection:
        revision = current_revision(connection)
    if revision == HEAD:
        return
    _refuse_newer(revision, engine)
    if auto_upgrade:
        upgrade(engine)
        return
    state = "is empty" if revision is None else f"is at schema {revision}"
    raise SchemaMismatch(
        f"the registry database {state}, this version of loraledger needs schema {HEAD}: "
        "run `adapters db upgrade`"
    )


def _refuse_newer(revision: str | None, engine: Engine) -> None:
    if revision is not None and revision not in KNOWN:
        raise SchemaMismatch(
            f"the registry database {engine.url.render_as_string(hide_password=True)} was written by a "
            f"newer loraledger (schema {revision}, this one knows up to {HEAD}): upgrade loraledger"
        )

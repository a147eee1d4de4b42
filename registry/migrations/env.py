"""Alembic environment: always driven programmatically by ``loraledger.registry.migrate``."""

from alembic import context
from sqlmodel import SQLModel

from loraledger.registry import tables  # noqa: F401  (registers the tables on the metadata)

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=SQLModel.metadata,
    # SQLite cannot ALTER most things in place; batch mode rebuilds tables so later migrations work there.
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()

"""Database engines: one SQL code path for SQLite and PostgreSQL, chosen by URL.

SQLite gets WAL (readers never wait for the writer), a busy timeout (concurrent writers queue instead
of failing) and ``BEGIN IMMEDIATE`` for write transactions, so two processes numbering versions of the
same adapter serialise at the start of the transaction rather than failing at commit.
"""

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from loraledger.registry.errors import InvalidInput

BUSY_TIMEOUT_MS = 60_000
WRITE = {"loraledger_write": True}


def make_engine(url: str) -> Engine:
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise InvalidInput(f"invalid database URL {url!r}: {exc}") from None
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000})
        event.listen(engine, "connect", _configure_sqlite)
        event.listen(engine, "begin", _begin_sqlite)
        return engine
    if parsed.get_backend_name() == "postgresql":
        return create_engine(parsed, pool_pre_ping=True)
    raise InvalidInput(
        f"unsupported database {parsed.get_backend_name()!r} in ADAPTERS_DB: use sqlite:///PATH or "
        "postgresql+psycopg://USER@HOST/DB"
    )


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    # Take transaction control away from the sqlite3 module so that the "begin" hook below decides
    # between BEGIN and BEGIN IMMEDIATE (SQLAlchemy's documented recipe for pysqlite).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _begin_sqlite(connection: Any) -> None:
    immediate = connection.get_execution_options().get("loraledger_write", False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

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

from loraledger.registry.errors import Corrupt, InvalidInput, StoreUnavailable

BUSY_TIMEOUT_MS = 60_000
WRITE = {"loraledger_write": True}


def make_engine(url: str) -> Engine:
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise InvalidInput(f"invalid database URL {url!r}: {exc}") from None
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:" and not parsed.query.get("uri"):
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000})
        event.listen(engine, "connect", _configure_sqlite)
        event.listen(engine, "handle_error", _translate_sqlite_error)
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


def _translate_sqlite_error(context: Any) -> None:
    """Turn the SQLite errors a user can act on into one line each; others go on as they are (busy
    ones must reach the store's retry loop unchanged).

    Raised here, in SQLAlchemy's error hook, so that every path meets them the same way: the schema
    check at open, reads, writes, migrations.
    """
    message = str(context.original_exception)
    database = context.engine.url.database if context.engine is not None else "the registry database"
    lowered = message.lower()
    if "file is not a database" in lowered or "disk image is malformed" in lowered:
        raise Corrupt(
            f"{database} is not a readable registry database (SQLite: {message}): restore it from a "
            "backup or point ADAPTERS_DB elsewhere"
        ) from None
    if "readonly database" in lowered or "read-only" in lowered:
        raise StoreUnavailable(
            f"the registry database {database} is read-only (SQLite: {message}): this command records "
            "something; give write access to the file and its folder"
        ) from None

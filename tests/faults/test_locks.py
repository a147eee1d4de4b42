"""A registry database locked by another connection: waited for and retried, or a one-line error."""

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.seeding import seed_version

from loraledger.registry import engine, store
from loraledger.settings import Settings


@pytest.fixture
def locked(home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[sqlite3.Connection]:
    """A registry with ip@1, and another connection holding its write lock."""
    seed_version(Settings.load().open_registry(), "ip", weights=b"one")
    # SQLite's own busy wait (60 s by default) would hide the retry layer: make it give up at once.
    monkeypatch.setattr(engine, "BUSY_TIMEOUT_MS", 50)
    holder = sqlite3.connect(home / "registry.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    yield holder
    holder.close()


def test_a_locked_database_is_retried_until_the_lock_is_released(
    adapters, locked: sqlite3.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    backoffs: list[float] = []

    def release_during_backoff(seconds: float) -> None:
        # The first attempt has failed with "database is locked"; the other connection lets go.
        if not backoffs:
            locked.execute("COMMIT")
        backoffs.append(seconds)

    monkeypatch.setattr(store.time, "sleep", release_during_backoff)
    result = adapters("alias", "ip@1", "champion", "--reason", "after the lock")
    assert result.exit_code == 0, result.output
    assert len(backoffs) == 1
    events = json.loads(adapters("history", "ip", "--json").stdout)
    assert events[-1]["alias"] == "champion" and events[-1]["reason"] == "after the lock"


def test_a_lock_that_is_never_released_is_a_one_line_error(
    adapters, locked: sqlite3.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = adapters("history", "ip", "--json").stdout
    backoffs: list[float] = []
    monkeypatch.setattr(store.time, "sleep", backoffs.append)
    result = adapters("alias", "ip@1", "champion")
    assert result.exit_code != 0
    assert result.stderr == "error: registry database error: database is locked\n"
    assert "Traceback" not in result.output
    assert len(backoffs) == store.WRITE_ATTEMPTS - 1  # every attempt made, with back-off between
    locked.execute("ROLLBACK")
    assert adapters("history", "ip", "--json").stdout == before

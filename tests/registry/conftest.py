"""The ``registry`` fixture: every registry test runs on embedded SQLite and on a real PostgreSQL."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from loraledger.registry import Registry
from loraledger.registry.engine import make_engine
from loraledger.registry.migrate import upgrade


def open_registry(url: str, tmp_path: Path) -> Registry:
    return Registry.open(url, str(tmp_path / "artifacts"), user="tester", host="testhost")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated, empty registry database: a SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'registry.db'}"
    url: str = request.getfixturevalue("postgres_url")
    engine = make_engine(url)
    upgrade(engine)  # what `adapters db upgrade` does; PostgreSQL is never migrated implicitly
    engine.dispose()
    return url


@pytest.fixture
def registry(db_url: str, tmp_path: Path) -> Iterator[Registry]:
    opened = open_registry(db_url, tmp_path)
    yield opened
    opened.store.engine.dispose()  # type: ignore[attr-defined]

"""Schema versioning: the migrations build exactly the tables the code declares, SQLite migrates itself,
PostgreSQL waits for `adapters db upgrade`, and a database from a newer loraledger is refused."""

from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlmodel import SQLModel

from loraledger.registry import Registry, tables  # noqa: F401  (tables registers the metadata)
from loraledger.registry.engine import make_engine
from loraledger.registry.errors import SchemaMismatch
from loraledger.registry.migrate import HEAD, KNOWN, MIGRATIONS, upgrade
from loraledger.schemas.records import UNRECORDED, BaseModelRecord


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def test_head_is_alembics_head() -> None:
    script = ScriptDirectory.from_config(alembic_config())
    assert script.get_current_head() == HEAD
    assert sorted(r.revision for r in script.walk_revisions()) == sorted(KNOWN)


def test_migrations_build_exactly_the_declared_tables(db_url: str) -> None:
    engine = make_engine(db_url)
    upgrade(engine)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, SQLModel.metadata) == []
            assert set(inspect(connection).get_table_names()) == {
                *SQLModel.metadata.tables,
                "alembic_version",
            }
    finally:
        engine.dispose()


def test_the_initial_migration_can_be_undone(db_url: str) -> None:
    engine = make_engine(db_url)
    upgrade(engine)
    try:
        with engine.begin() as connection:
            config = alembic_config()
            config.attributes["connection"] = connection
            command.downgrade(config, "base")
        with engine.connect() as connection:
            assert set(inspect(connection).get_table_names()) <= {"alembic_version"}
    finally:
        engine.dispose()


def test_upgrading_twice_changes_nothing(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        assert upgrade(engine)[1] == HEAD
        assert upgrade(engine) == (HEAD, HEAD)
    finally:
        engine.dispose()


def test_0002_gives_existing_scores_the_unrecorded_setting(db_url: str, tmp_path: Path) -> None:
    """Scores written under schema 0001 keep their values and read back as 'unrecorded'; the base-score
    index then covers the setting, and downgrading to 0001 removes the column again."""
    engine = make_engine(db_url)
    upgrade(engine)
    config = alembic_config()
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.downgrade(config, "0001")
            assert "setting" not in {c["name"] for c in inspect(connection).get_columns("eval_result")}
            connection.execute(
                text(
                    "INSERT INTO base_model (id, fingerprint, model_id, config_digest) "
                    "VALUES (1, 'builtin:tiny||sha256:c|', 'builtin:tiny', 'sha256:c')"
                )
            )
            connection.execute(
                text(
                    "INSERT INTO dataset (id, digest, format, rows, created_at) "
                    "VALUES (1, 'sha256:held', 'jsonl', 3, :moment)"
                ),
                {"moment": "2026-11-01 00:00:00"},
            )
            connection.execute(
                text(
                    "INSERT INTO eval_result (base_model_id, dataset_id, metric, value, label, created_at) "
                    "VALUES (1, 1, 'nll', 2.5, 'held', :moment)"
                ),
                {"moment": "2026-11-01 00:00:00"},
            )
        assert upgrade(engine) == ("0001", HEAD)
        with engine.connect() as connection:
            columns = {c["name"]: c for c in inspect(connection).get_columns("eval_result")}
            assert not columns["setting"]["nullable"]
            [index] = [
                i
                for i in inspect(connection).get_indexes("eval_result")
                if i["name"] == "ix_eval_result_base"
            ]
            assert index["column_names"] == ["base_model_id", "dataset_id", "metric", "setting"]
        registry = Registry.open(db_url, str(tmp_path / "artifacts"), user="u", host="h")
        base = BaseModelRecord(model_id="builtin:tiny", config_digest="sha256:c")
        [old] = registry.base_evals(base)
        assert (old.value, old.setting, old.dataset_digest) == (2.5, UNRECORDED, "sha256:held")
        registry.store.engine.dispose()  # type: ignore[attr-defined]

        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.downgrade(config, "0001")
        with engine.connect() as connection:
            assert "setting" not in {c["name"] for c in inspect(connection).get_columns("eval_result")}
            assert connection.execute(text("SELECT value FROM eval_result")).scalar_one() == 2.5
    finally:
        engine.dispose()


def _write_newer_revision(db_url: str) -> None:
    engine = make_engine(db_url)
    upgrade(engine)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '0099'"))
    engine.dispose()


def test_a_database_from_a_newer_loraledger_is_refused(db_url: str, tmp_path: Path) -> None:
    _write_newer_revision(db_url)
    with pytest.raises(SchemaMismatch) as refused:
        Registry.open(db_url, str(tmp_path / "artifacts"), user="u", host="h")
    assert (
        f"was written by a newer loraledger (schema 0099, this one knows up to {HEAD}): upgrade loraledger"
        in str(refused.value)
    )
    with pytest.raises(SchemaMismatch, match="newer loraledger"):
        upgrade(make_engine(db_url))


def test_the_embedded_registry_creates_and_migrates_itself(adapters, home: Path) -> None:
    assert adapters("list").exit_code == 0
    engine = make_engine(f"sqlite:///{home / 'registry.db'}")
    with engine.connect() as connection:
        assert connection.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == HEAD
    engine.dispose()
    assert adapters("db", "status").stdout.strip().endswith(f"schema {HEAD} (code: {HEAD})")


def test_a_newer_embedded_registry_is_refused_in_one_line(adapters, home: Path) -> None:
    _write_newer_revision(f"sqlite:///{home / 'registry.db'}")
    result = adapters("list")
    assert result.exit_code == 4
    assert result.stderr.startswith("error: the registry database sqlite:///")
    assert result.stderr.strip().endswith("upgrade loraledger")


@pytest.mark.postgres
def test_postgresql_is_migrated_only_by_db_upgrade(
    adapters, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ADAPTERS_DB", postgres_url)
    refused = adapters("list")
    assert refused.exit_code == 4
    assert refused.stderr.strip() == (
        f"error: the registry database is empty, this version of loraledger needs schema {HEAD}: "
        "run `adapters db upgrade`"
    )
    assert adapters("db", "status").stdout.strip().endswith(f"schema empty (code: {HEAD})")
    upgraded = adapters("db", "upgrade")
    assert upgraded.exit_code == 0, upgraded.output
    assert upgraded.stdout.strip() == f"schema empty -> {HEAD}"
    assert adapters("db", "upgrade").stdout.strip() == f"schema already at {HEAD}"
    assert adapters("list").exit_code == 0
    assert adapters("db", "status").stdout.strip().endswith(f"schema {HEAD} (code: {HEAD})")


@pytest.mark.postgres
def test_a_newer_postgresql_schema_is_refused_in_one_line(
    adapters, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write_newer_revision(postgres_url)
    monkeypatch.setenv("ADAPTERS_DB", postgres_url)
    for args in (["list"], ["db", "upgrade"]):
        result = adapters(*args)
        assert result.exit_code == 4
        assert "was written by a newer loraledger (schema 0099" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1

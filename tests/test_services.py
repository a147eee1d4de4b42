"""The service fixtures in tests/support/services.py start real servers, on loopback only."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
from typing import Any

import pytest
from sqlalchemy import create_engine, inspect, text
from support.services import PostgresServer, S3Server, endpoint_host

# Database names seen by test_each_test_gets_its_own_empty_database, in run order.
_seen_databases: list[str] = []


def _refused(host: str, port: int) -> bool:
    """Whether nothing accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=5):
            return False
    except OSError:
        return True


# --------------------------------------------------------------------------- PostgreSQL


@pytest.mark.postgres
def test_postgres_url_round_trip(postgres_url: str) -> None:
    assert postgres_url.startswith("postgresql+psycopg://postgres@127.0.0.1:")
    engine = create_engine(postgres_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE adapters (id serial PRIMARY KEY, name text NOT NULL)"))
            conn.execute(text("INSERT INTO adapters (name) VALUES (:a), (:b)"), [{"a": "x", "b": "y"}])
        with engine.connect() as conn:
            names = conn.execute(text("SELECT name FROM adapters ORDER BY id")).scalars().all()
        assert names == ["x", "y"]
    finally:
        engine.dispose()


@pytest.mark.postgres
@pytest.mark.parametrize("run", ["first", "second"])
def test_each_test_gets_its_own_empty_database(
    run: str, postgres_url: str, postgres_server: PostgresServer
) -> None:
    engine = create_engine(postgres_url)
    try:
        with engine.begin() as conn:
            # Empty, whatever an earlier test created in its own database.
            assert inspect(conn).get_table_names() == []
            name = conn.execute(text("SELECT current_database()")).scalar_one()
            conn.execute(text("CREATE TABLE leftover (id int)"))
            existing = set(conn.execute(text("SELECT datname FROM pg_database")).scalars())
    finally:
        engine.dispose()
    assert name not in _seen_databases
    # The other run's database was dropped when that test ended.
    assert not existing.intersection(_seen_databases)
    _seen_databases.append(name)


@pytest.mark.postgres
def test_drop_database_disconnects_leftover_sessions(postgres_server: PostgresServer) -> None:
    url = postgres_server.create_database("t_drop_with_open_pool")
    engine = create_engine(url)
    conn = engine.connect()  # left open on purpose, as a sloppy test would
    try:
        conn.execute(text("SELECT 1"))
        postgres_server.drop_database("t_drop_with_open_pool")
        admin = create_engine(postgres_server.url())
        try:
            with admin.connect() as check:
                remaining = check.execute(
                    text("SELECT count(*) FROM pg_database WHERE datname = 't_drop_with_open_pool'")
                ).scalar_one()
        finally:
            admin.dispose()
        assert remaining == 0
    finally:
        conn.invalidate()  # its server session was terminated by DROP ... WITH (FORCE)
        engine.dispose()


@pytest.mark.postgres
def test_postgres_listens_on_loopback_only(postgres_server: PostgresServer) -> None:
    assert endpoint_host(postgres_server.url("x")) == "127.0.0.1"
    engine = create_engine(postgres_server.url())
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SHOW listen_addresses")).scalar_one() == "127.0.0.1"
            assert str(conn.execute(text("SELECT inet_server_addr()")).scalar_one()) == "127.0.0.1"
    finally:
        engine.dispose()
    if sys.platform.startswith("linux"):
        # All of 127/8 reaches the host on Linux: a server bound to 0.0.0.0 would answer here.
        assert _refused("127.0.0.2", postgres_server.port)


# --------------------------------------------------------------------------- S3


@pytest.mark.s3
def test_s3_storage_options_round_trip(s3_bucket: tuple[str, dict[str, Any]]) -> None:
    import fsspec

    bucket, storage_options = s3_bucket
    fs = fsspec.filesystem("s3", **storage_options)
    with fs.open(f"{bucket}/adapters/a1/adapter_config.json", "wb") as f:
        f.write(b'{"r": 8}')
    assert fs.cat(f"{bucket}/adapters/a1/adapter_config.json") == b'{"r": 8}'
    assert fs.ls(f"{bucket}/adapters/a1", detail=False) == [f"{bucket}/adapters/a1/adapter_config.json"]


@pytest.mark.s3
def test_s3_bare_url_reaches_loopback_via_environment(
    s3_bucket: tuple[str, dict[str, Any]], s3_server: S3Server
) -> None:
    import boto3
    import fsspec

    bucket, _ = s3_bucket
    # No storage options at all, as code that only gets "s3://bucket/prefix" from its config.
    with fsspec.open(f"s3://{bucket}/runs/r1/metrics.json", "wb") as f:
        f.write(b"[1, 2]")
    with fsspec.open(f"s3://{bucket}/runs/r1/metrics.json", "rb") as f:
        assert f.read() == b"[1, 2]"
    # Plain boto3 (no endpoint argument) sees the same object: botocore honours AWS_ENDPOINT_URL_S3.
    client = boto3.client("s3")
    assert client.meta.endpoint_url == s3_server.endpoint_url
    listed = client.list_objects_v2(Bucket=bucket)["Contents"]
    assert [item["Key"] for item in listed] == ["runs/r1/metrics.json"]


@pytest.mark.s3
def test_s3_environment_reaches_subprocesses(s3_bucket: tuple[str, dict[str, Any]]) -> None:
    # A child process (e.g. the `adapters` CLI) imports fsspec afresh and must
    # find the endpoint in FSSPEC_S3_ENDPOINT_URL / AWS_ENDPOINT_URL_S3.
    bucket, _ = s3_bucket
    script = textwrap.dedent(
        f"""
        import fsspec
        with fsspec.open("s3://{bucket}/child.txt", "wb") as f:
            f.write(b"from child")
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
    import fsspec

    with fsspec.open(f"s3://{bucket}/child.txt", "rb") as f:
        assert f.read() == b"from child"


@pytest.mark.s3
def test_s3_server_listens_on_loopback_only(s3_server: S3Server) -> None:
    assert endpoint_host(s3_server.endpoint_url) == "127.0.0.1"
    assert s3_server.host == "127.0.0.1"
    if sys.platform.startswith("linux"):
        assert _refused("127.0.0.2", s3_server.port)


def test_service_fixtures_mark_their_tests(
    s3_bucket: tuple[str, dict[str, Any]], request: pytest.FixtureRequest
) -> None:
    # Deliberately unmarked: the plugin adds the marker, so `-m "not s3"` deselects it.
    assert request.node.get_closest_marker("s3") is not None
    assert request.node.get_closest_marker("postgres") is None

"""Pytest fixtures that start real backing services on loopback for the test suite.

Project rule: tests talk to *real* servers, never to in-process fakes of the
database driver or of the S3 client. This plugin provides them:

``postgres_server`` (session)
    A throwaway PostgreSQL cluster (``initdb`` into a temporary folder, started
    with ``pg_ctl -w``) listening on 127.0.0.1 only, on a free port, trust auth.
``postgres_url`` (function)
    A fresh, empty database on that cluster for each test; dropped afterwards.
``s3_server`` (session)
    moto's standalone S3-compatible server (``ThreadedMotoServer``) on 127.0.0.1.
``s3_bucket`` (function)
    A unique, empty bucket plus the fsspec/s3fs ``storage_options`` to reach it.
    It also points the AWS/fsspec environment at the loopback server, so code that
    only receives an ``s3://bucket/prefix`` URL from configuration ends up there.

If PostgreSQL's server binaries are missing, the PostgreSQL fixtures skip the
test, unless ``ADAPTERS_REQUIRE_SERVICES=1`` (set by ``.ci/run``), in which case
they fail: CI must never go green by silently skipping the database tests.

Tests that request these fixtures are given the ``postgres`` / ``s3`` markers
automatically (see :func:`pytest_collection_modifyitems`), so ``-m "not postgres"``
deselects them even if a test author forgot the marker.

Loaded from ``tests/conftest.py`` via ``pytest_plugins = ["support.services"]``.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import socket
import stat
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import quote, urlsplit

import pytest

REQUIRE_SERVICES_ENV = "ADAPTERS_REQUIRE_SERVICES"
LOOPBACK = "127.0.0.1"

# Every cluster folder starts with this prefix, which is how a later run finds
# folders (and servers) left behind by a session that was killed (see
# _reap_stale_clusters).
_PG_DIR_PREFIX = "loraledger-pg-"
# Written into each cluster folder right after it is created: the pid of the
# pytest process owning it. A folder whose owner is gone is stale.
_OWNER_FILE = "owner.pid"
# A folder without an owner file is either being created right now by another
# process or was abandoned during creation; only the latter is old.
_ORPHAN_MIN_AGE_S = 600.0
_PG_SUPERUSER = "postgres"
_PG_OS_USER = "postgres"
_PG_BINARIES = ("initdb", "pg_ctl", "postgres")
# Generous: a cold start on a loaded CI machine takes well under a few seconds,
# but a hung server must not hang CI until the pytest-timeout (15 min) fires.
_PG_CTL_TIMEOUT_S = 60
_PG_START_ATTEMPTS = 3

S3_ACCESS_KEY = "testing"
S3_SECRET_KEY = "testing"
S3_REGION = "us-east-1"


# --------------------------------------------------------------------------- helpers


def _services_required() -> bool:
    return os.environ.get(REQUIRE_SERVICES_ENV, "").strip().lower() in {"1", "true", "yes"}


def _unavailable(reason: str) -> NoReturn:
    """Skip the requesting test, or fail it when CI demands real services."""
    if _services_required():
        pytest.fail(
            f"{reason} ({REQUIRE_SERVICES_ENV}=1, so this is an error instead of a skip)",
            pytrace=False,
        )
    pytest.skip(f"{reason} (set {REQUIRE_SERVICES_ENV}=1 to make this an error)")


def _slug(text: str, max_len: int, allowed: str = "a-z0-9") -> str:
    """Lower-case ``text`` and keep only characters valid in a db/bucket name.

    Names carry the test name so a leftover database or bucket can be traced
    back to the test that made it; a random suffix keeps them unique.
    """
    cleaned = re.sub(f"[^{allowed}]+", "_" if "_" in allowed else "-", text.lower())
    return cleaned.strip("_-")[:max_len].strip("_-")


def _free_loopback_port() -> int:
    # Another process may grab the port between this close() and the server's
    # bind(); the caller retries start-up on a new port when that happens.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def _version_key(bindir: Path) -> tuple[int, ...]:
    # /usr/lib/postgresql/<version>/bin: compare "9.6" < "15" numerically.
    return tuple(int(part) for part in re.findall(r"\d+", bindir.parent.name)) or (-1,)


def _has_server_binaries(bindir: Path) -> bool:
    return all(os.access(bindir / name, os.X_OK) for name in _PG_BINARIES)


def find_postgres_bindir() -> Path | None:
    """Locate a folder with ``initdb``, ``pg_ctl`` and ``postgres``, or ``None``.

    ``pg_config --bindir`` comes first because it names the installation the
    machine's tooling considers current. On Debian, though, ``pg_config`` may come
    from libpq-dev alone (client only), so its answer is checked for the server
    binaries before being trusted, and Debian's versioned layout is the fallback.
    """
    pg_config = shutil.which("pg_config")
    if pg_config is not None:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(
                [pg_config, "--bindir"],
                capture_output=True,
                text=True,
                timeout=30,
                check=True,
                stdin=subprocess.DEVNULL,
            ).stdout.strip()
            if out and _has_server_binaries(Path(out)):
                return Path(out)
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=_version_key, reverse=True)
    return next((path for path in candidates if _has_server_binaries(path)), None)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, just belongs to someone else
    return True


def _world_traversable(path: Path) -> bool:
    """Whether a non-root user can reach ``path`` (every ancestor has o+x)."""
    for part in (path, *path.parents):
        try:
            if not part.stat().st_mode & stat.S_IXOTH:
                return False
        except OSError:
            return False
    return True


@dataclass(frozen=True)
class _RunAs:
    """How to run PostgreSQL's programs: directly, or as ``postgres`` when we are root.

    The postmaster refuses to run as root (and initdb refuses to create a cluster
    for it), so as root every PostgreSQL program goes through ``runuser`` and the
    cluster folder is handed over to that user.
    """

    prefix: tuple[str, ...] = ()
    uid: int | None = None
    gid: int | None = None

    @classmethod
    def detect(cls) -> _RunAs:
        if os.geteuid() != 0:
            return cls()
        runuser = shutil.which("runuser")
        if runuser is None:
            _unavailable("running as root but 'runuser' (util-linux) is not installed")
        try:
            entry = pwd.getpwnam(_PG_OS_USER)
        except KeyError:
            _unavailable(
                f"running as root but there is no '{_PG_OS_USER}' OS user to run PostgreSQL as "
                "(Debian's postgresql package creates it)"
            )
        return cls((runuser, "-u", _PG_OS_USER, "--"), entry.pw_uid, entry.pw_gid)

    def chown(self, path: Path) -> None:
        if self.uid is not None and self.gid is not None:
            os.chown(path, self.uid, self.gid)

    def run(self, argv: Sequence[str | Path], cwd: Path) -> subprocess.CompletedProcess[str]:
        """Run a PostgreSQL program; never raises on a non-zero exit code."""
        env = {
            key: value
            for key, value in os.environ.items()
            # PGDATA, PGPORT, PGHOST... from the caller's shell must not steer
            # the throwaway cluster anywhere else.
            if not key.startswith("PG")
        }
        env["LC_ALL"] = "C"  # stable, parseable messages whatever the CI locale
        return subprocess.run(
            [*self.prefix, *map(str, argv)],
            # cwd: as root, our cwd (the repo) may be unreadable for 'postgres'.
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=_PG_CTL_TIMEOUT_S + 30,
            check=False,
        )


def _reap_stale_clusters(base: Path, bindir: Path, run_as: _RunAs) -> None:
    """Stop servers and remove folders left by pytest sessions that were killed.

    A session interrupted with Ctrl-C tears its fixtures down normally, but one
    killed (SIGKILL, CI job timeout) leaves its postmaster running and its folder
    behind. They would not break this run (we always pick a new folder and a free
    port) but would pile up, so each start cleans up after dead owners.
    """
    ours = {os.geteuid(), run_as.uid}
    for folder in base.glob(f"{_PG_DIR_PREFIX}*"):
        try:
            if folder.stat().st_uid not in ours:
                continue  # another user's session: not ours to judge, nor could we remove it
        except OSError:
            continue
        owner_file = folder / _OWNER_FILE
        try:
            owner = int(owner_file.read_text().strip())
        except (OSError, ValueError):
            owner = None
        if owner is not None and _pid_alive(owner):
            continue  # a live session (another engineer's run, an xdist worker)
        if owner is None:
            try:
                age = time.time() - folder.stat().st_mtime
            except OSError:
                continue
            if age < _ORPHAN_MIN_AGE_S:
                continue  # probably being set up right now by another process
        data = folder / "data"
        if (data / "postmaster.pid").exists():
            run_as.run([bindir / "pg_ctl", "stop", "-D", data, "-m", "immediate", "-w"], cwd=folder)
        shutil.rmtree(folder, ignore_errors=True)


# --------------------------------------------------------------------------- PostgreSQL


@dataclass
class PostgresServer:
    """A running throwaway PostgreSQL cluster on 127.0.0.1 (trust auth, superuser ``postgres``)."""

    bindir: Path
    root: Path
    port: int
    host: str = LOOPBACK
    startup_seconds: float = 0.0
    version: str = ""
    #: e.g. 150018 for 15.18; 0 until the server has been started.
    server_version_num: int = 0
    _run_as: _RunAs = field(default_factory=_RunAs, repr=False)

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log_file(self) -> Path:
        return self.root / "postgres.log"

    def url(self, dbname: str = "postgres") -> str:
        """SQLAlchemy URL for ``dbname``: ``postgresql+psycopg://postgres@127.0.0.1:PORT/dbname``."""
        return f"postgresql+psycopg://{_PG_SUPERUSER}@{self.host}:{self.port}/{quote(dbname, safe='')}"

    def conninfo(self, dbname: str = "postgres") -> str:
        """libpq connection string, for psycopg directly."""
        # sslmode=disable: a PGSSLMODE=require in the environment would otherwise
        # fail against this server, which has no certificate.
        return (
            f"host={self.host} port={self.port} user={_PG_SUPERUSER} dbname={dbname} "
            "sslmode=disable connect_timeout=10"
        )

    def _admin(self, statement: Any) -> None:
        import psycopg

        # CREATE/DROP DATABASE cannot run inside a transaction block: autocommit.
        with psycopg.connect(self.conninfo(), autocommit=True) as conn:
            conn.execute(statement)

    def create_database(self, name: str) -> str:
        """Create an empty database ``name`` and return its SQLAlchemy URL."""
        from psycopg import sql

        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if self.server_version_num >= 150000:
            # 15's default WAL_LOG strategy copies the template through the WAL
            # (~0.1 s a database); FILE_COPY costs two checkpoints, which are
            # nearly free with fsync off: ~0.02 s. It matters at one database a test.
            statement = sql.SQL("{} STRATEGY = FILE_COPY").format(statement)
        self._admin(statement)
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop ``name``, first disconnecting whatever still uses it (pooled engines)."""
        from psycopg import sql

        # WITH (FORCE) (PostgreSQL 13+) terminates the remaining sessions, e.g. an
        # SQLAlchemy pool a test forgot to dispose; a plain DROP would fail on them.
        self._admin(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    def stop(self) -> None:
        """Stop the server (fast shutdown; immediate if that fails) and delete its folder."""
        if (self.data_dir / "postmaster.pid").exists():
            pg_ctl = self.bindir / "pg_ctl"
            stopped = self._run_as.run(
                [pg_ctl, "stop", "-D", self.data_dir, "-m", "fast", "-w", "-t", str(_PG_CTL_TIMEOUT_S)],
                cwd=self.root,
            )
            if stopped.returncode != 0:
                self._run_as.run(
                    [pg_ctl, "stop", "-D", self.data_dir, "-m", "immediate", "-w"], cwd=self.root
                )
        shutil.rmtree(self.root, ignore_errors=True)


def _cluster_base_dir(run_as: _RunAs) -> Path:
    base = Path(tempfile.gettempdir())
    # As root, the 'postgres' user must be able to reach the folder; a private
    # TMPDIR (e.g. /root/tmp) would make initdb fail with a confusing EACCES.
    if run_as.uid is not None and not _world_traversable(base):
        base = Path("/tmp")
    return base


def _init_cluster(server: PostgresServer) -> None:
    run_as = server._run_as
    initdb = run_as.run(
        [
            server.bindir / "initdb",
            "-D",
            server.data_dir,
            "-U",
            _PG_SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",  # no dependence on the machine's installed locales
            "--no-sync",  # throwaway cluster: skip fsync, saves about a second
        ],
        cwd=server.root,
    )
    if initdb.returncode != 0:
        raise RuntimeError(f"initdb failed ({initdb.returncode}):\n{initdb.stdout}\n{initdb.stderr}")

    # Replace initdb's pg_hba.conf: trust, but only over the private unix socket
    # and 127.0.0.1. No ::1, no replication, nothing else.
    hba = server.data_dir / "pg_hba.conf"
    hba.write_text(
        "# Written by tests/support/services.py: throwaway test cluster, loopback only.\n"
        "local all all trust\n"
        f"host  all all {LOOPBACK}/32 trust\n"
    )
    run_as.chown(hba)
    with (server.data_dir / "postgresql.conf").open("a") as conf:
        conf.write(
            "\n# tests/support/services.py\n"
            f"listen_addresses = '{LOOPBACK}'\n"
            # The socket lives in our private folder, not /var/run/postgresql
            # (which may not exist, and may belong to a system cluster).
            f"unix_socket_directories = '{server.root}'\n"
            # Durability is pointless for a cluster deleted after the run, and
            # fsync makes CREATE/DROP DATABASE per test several times slower.
            "fsync = off\n"
            "synchronous_commit = off\n"
            "full_page_writes = off\n"
            "max_connections = 200\n"
        )


def _start_cluster(server: PostgresServer) -> None:
    """``pg_ctl -w start`` on a free port, retrying if another process took the port."""
    last = ""
    for _ in range(_PG_START_ATTEMPTS):
        server.port = _free_loopback_port()
        started = server._run_as.run(
            [
                server.bindir / "pg_ctl",
                "start",
                "-D",
                server.data_dir,
                "-l",
                server.log_file,
                # -w waits until the server accepts connections (no sleep-polling
                # on our side); -t bounds that wait.
                "-w",
                "-t",
                str(_PG_CTL_TIMEOUT_S),
                "-o",
                f"-p {server.port}",
            ],
            cwd=server.root,
        )
        if started.returncode == 0:
            return
        log = server.log_file.read_text(errors="replace") if server.log_file.exists() else ""
        last = f"{started.stdout}\n{started.stderr}\n--- {server.log_file} ---\n{log}"
        if "could not bind" not in log and "already in use" not in log:
            break
    raise RuntimeError(f"pg_ctl start failed:\n{last}")


def start_postgres(bindir: Path) -> PostgresServer:
    """Create, configure and start a throwaway cluster; the caller must ``stop()`` it."""
    run_as = _RunAs.detect()
    base = _cluster_base_dir(run_as)
    _reap_stale_clusters(base, bindir, run_as)

    began = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix=_PG_DIR_PREFIX, dir=base))
    (root / _OWNER_FILE).write_text(f"{os.getpid()}\n")
    # mkdtemp makes the folder 0700 for us; as root, hand it to 'postgres', who
    # must own the data directory and write the socket and the log here.
    run_as.chown(root)
    server = PostgresServer(bindir=bindir, root=root, port=0, _run_as=run_as)
    try:
        _init_cluster(server)
        _start_cluster(server)
    except BaseException:
        server.stop()
        raise
    server.startup_seconds = time.monotonic() - began
    import psycopg

    try:
        with psycopg.connect(server.conninfo()) as conn:
            server.server_version_num = conn.info.server_version
            row = conn.execute("SELECT version()").fetchone()
            server.version = str(row[0]) if row else ""
    except BaseException:
        server.stop()
        raise
    return server


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server on 127.0.0.1 for the whole session; see :class:`PostgresServer`."""
    bindir = find_postgres_bindir()
    if bindir is None:
        _unavailable(
            "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found via "
            "'pg_config --bindir' or /usr/lib/postgresql/*/bin; .ci/run installs Debian's "
            "'postgresql' package"
        )
    try:
        import psycopg  # noqa: F401  (only to report a clear reason below)
    except ImportError:
        _unavailable("psycopg is not installed (pip install 'psycopg[binary]')")
    server = start_postgres(bindir)
    try:
        yield server
    finally:
        # Also runs on Ctrl-C: pytest tears session fixtures down on KeyboardInterrupt.
        server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer, request: pytest.FixtureRequest) -> Iterator[str]:
    """SQLAlchemy URL of a fresh, empty database, unique to this test and dropped after it."""
    # 63 bytes is PostgreSQL's identifier limit: "t_" + slug + "_" + 8 hex.
    name = f"t_{_slug(request.node.name, 40, 'a-z0-9_')}_{uuid.uuid4().hex[:8]}"
    url = postgres_server.create_database(name)
    try:
        yield url
    finally:
        postgres_server.drop_database(name)


# --------------------------------------------------------------------------- S3 (moto)


@dataclass(frozen=True)
class S3Server:
    """moto's S3-compatible server running in a thread of this process."""

    host: str
    port: int
    startup_seconds: float

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """moto's ``ThreadedMotoServer`` on 127.0.0.1 and an OS-chosen port, for the session."""
    try:
        from moto.server import ThreadedMotoServer
    except ImportError:
        _unavailable("moto[server] is not installed")
    began = time.monotonic()
    # Port 0: the OS picks a free port at bind time, so there is no race with
    # other processes; get_host_and_port() reports the one chosen.
    server = ThreadedMotoServer(ip_address=LOOPBACK, port=0, verbose=False)
    server.start()  # returns once the socket is bound and listening
    try:
        host, port = server.get_host_and_port()
        yield S3Server(host=host, port=port, startup_seconds=time.monotonic() - began)
    finally:
        server.stop()


def _s3_env(endpoint_url: str) -> dict[str, str]:
    return {
        "AWS_ACCESS_KEY_ID": S3_ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": S3_SECRET_KEY,
        "AWS_DEFAULT_REGION": S3_REGION,
        "AWS_REGION": S3_REGION,
        # botocore >= 1.31 (so aiobotocore, hence s3fs) reads these; the
        # service-specific one wins over the global one for S3. The global one
        # sends any other AWS service (STS...) to moto too rather than to AWS.
        "AWS_ENDPOINT_URL_S3": endpoint_url,
        "AWS_ENDPOINT_URL": endpoint_url,
        # fsspec turns FSSPEC_<PROTOCOL>_<KWARG> into default kwargs, but reads
        # the environment only when fsspec is imported: this reaches subprocesses
        # (e.g. the CLI run as a program); this process is patched separately.
        "FSSPEC_S3_ENDPOINT_URL": endpoint_url,
        # Never ask 169.254.169.254 (or an ECS agent) for credentials/region.
        "AWS_EC2_METADATA_DISABLED": "true",
        # A developer's ~/.aws must not add profiles, SSO or endpoints.
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }


# Variables that could pull credentials or endpoints from elsewhere, or switch
# the endpoint variables above off.
_S3_ENV_REMOVED = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
    "AWS_S3_US_EAST_1_REGIONAL_ENDPOINT",
)


def _bypass_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    # A CI machine with HTTP(S)_PROXY set would otherwise route loopback
    # requests through the proxy (botocore honours the proxy variables).
    for var in ("NO_PROXY", "no_proxy"):
        current = [item for item in os.environ.get(var, "").split(",") if item]
        extra = [item for item in (LOOPBACK, "localhost") if item not in current]
        monkeypatch.setenv(var, ",".join([*current, *extra]))


def _clear_s3fs_instances() -> None:
    # fsspec caches filesystem instances by their kwargs: a bare fsspec.open("s3://...")
    # could otherwise reuse an S3FileSystem built before the environment pointed
    # at moto (i.e. at real AWS), or one bound to a closed event loop/session.
    with contextlib.suppress(ImportError):
        import s3fs

        s3fs.S3FileSystem.clear_instance_cache()


def _boto3_client(endpoint_url: str) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        aws_access_key_id=S3_ACCESS_KEY,
        aws_secret_access_key=S3_SECRET_KEY,
        region_name=S3_REGION,
        config=Config(retries={"max_attempts": 2}, connect_timeout=10, read_timeout=60),
    )


def _empty_and_delete_bucket(client: Any, bucket: str) -> None:
    # moto keeps objects in memory for the whole session; adapter weights add up.
    paginator = client.get_paginator("list_object_versions")
    for page in paginator.paginate(Bucket=bucket):
        doomed = [
            {"Key": item["Key"], "VersionId": item["VersionId"]}
            for item in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]
        ]
        if doomed:
            client.delete_objects(Bucket=bucket, Delete={"Objects": doomed, "Quiet": True})
    client.delete_bucket(Bucket=bucket)


@pytest.fixture
def s3_bucket(
    s3_server: S3Server, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, dict[str, Any]]]:
    """A unique empty bucket on the moto server: ``(bucket_name, storage_options)``.

    ``storage_options`` is what ``fsspec.filesystem("s3", **storage_options)`` and
    ``fsspec.open(url, **storage_options)`` need. The AWS and fsspec environment is
    also pointed at the server for the duration of the test, so a bare
    ``fsspec.open("s3://bucket/key")`` reaches it as well.
    """
    endpoint = s3_server.endpoint_url
    for var in _S3_ENV_REMOVED:
        monkeypatch.delenv(var, raising=False)
    for var, value in _s3_env(endpoint).items():
        monkeypatch.setenv(var, value)
    _bypass_proxies(monkeypatch)
    with contextlib.suppress(ImportError):
        import fsspec.config

        # FSSPEC_S3_ENDPOINT_URL was read at import time, before this fixture ran;
        # fsspec.config.conf is what new filesystem instances actually consult.
        s3_defaults = {**fsspec.config.conf.get("s3", {}), "endpoint_url": endpoint}
        monkeypatch.setitem(fsspec.config.conf, "s3", s3_defaults)
    _clear_s3fs_instances()

    # S3 bucket names: 3-63 chars of [a-z0-9-]; 8 hex digits keep them unique.
    bucket = f"t-{_slug(request.node.name, 40, 'a-z0-9-')}-{uuid.uuid4().hex[:8]}"
    client = _boto3_client(endpoint)
    client.create_bucket(Bucket=bucket)
    storage_options: dict[str, Any] = {
        "key": S3_ACCESS_KEY,
        "secret": S3_SECRET_KEY,
        "client_kwargs": {"endpoint_url": endpoint, "region_name": S3_REGION},
    }
    try:
        yield bucket, storage_options
    finally:
        _clear_s3fs_instances()
        with contextlib.suppress(Exception):  # best effort: the server dies with the session anyway
            _empty_and_delete_bucket(client, bucket)


# --------------------------------------------------------------------------- markers

_FIXTURE_MARKERS = {
    "postgres_server": "postgres",
    "postgres_url": "postgres",
    "s3_server": "s3",
    "s3_bucket": "s3",
}


def pytest_configure(config: pytest.Config) -> None:
    """Declare the markers this plugin applies (pyproject.toml declares them too).

    Registering them here as well keeps the plugin usable under ``--strict-markers``
    in a checkout whose configuration lacks them; a duplicate line is harmless.
    """
    config.addinivalue_line("markers", "postgres: needs the PostgreSQL server the tests start on loopback")
    config.addinivalue_line("markers", "s3: needs the S3-compatible server the tests start on loopback")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark tests that use a service fixture, so ``-m "not postgres"`` / ``"not s3"`` works."""
    for item in items:
        fixturenames: Sequence[str] = getattr(item, "fixturenames", ())
        for marker in sorted({_FIXTURE_MARKERS[name] for name in fixturenames if name in _FIXTURE_MARKERS}):
            if item.get_closest_marker(marker) is None:
                item.add_marker(marker)


def endpoint_host(url: str) -> str:
    """Host part of a URL (``http://127.0.0.1:5000`` -> ``127.0.0.1``), for loopback checks."""
    return urlsplit(url).hostname or ""

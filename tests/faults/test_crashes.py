"""kill -9 at every step of a registration leaves no half-registered version, no lock, and no orphan
that `adapters gc` does not list; a full disk refuses cleanly and loses nothing registered.

The writer here is the registration half of `adapters train` (store artifact and dataset copy, then one
transaction) run as its own process; test_train_crashes.py does the same with the real training CLI.
"""

import os
import signal
from pathlib import Path

import pytest
from support import cli_process
from support.crash_checks import assert_nothing_half_done
from support.seeding import seed_version

from loraledger.registry import Registry
from loraledger.registry.errors import StoreUnavailable
from loraledger.settings import Settings


@pytest.fixture
def registry() -> Registry:
    registry = Settings.load().open_registry()
    seed_version(registry, "ip", weights=b"version one")
    return registry


@pytest.mark.parametrize(
    ("fault", "leftovers"),
    [
        # (The config file is the same as ip@1's: stored once already, it is not written again.)
        ("blob-write", ["temporary"]),  # the weights half-written: a temporary file, nothing named
        ("manifest-write", ["blob", "temporary"]),  # weights stored, manifest half-written
        ("blob-write@2", ["blob", "manifest", "temporary"]),  # adapter stored, dataset copy half-written
        ("register-commit", ["blob", "blob", "manifest"]),  # all stored, inserts done, COMMIT never issued
    ],
)
def test_kill_during_registration(
    adapters, registry: Registry, tmp_path: Path, fault: str, leftovers: list[str]
) -> None:
    before = adapters("list", "--json").stdout
    crashed = cli_process.start_seed_writer(
        "ip", "ip@1", "version two", workdir=tmp_path / "w", ADAPTERS_FAULT=f"{fault}:kill"
    ).finish()
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    assert assert_nothing_half_done(adapters, registry, before) == leftovers

    # Recovery: collect the leftovers, register again; the crashed attempt used up no number.
    assert adapters("gc", "--min-age", "0", "--yes").exit_code == 0
    again = cli_process.start_seed_writer("ip", "ip@1", "version two", workdir=tmp_path / "again").finish()
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == "ip@2"
    assert adapters("verify").exit_code == 0


def test_kill_from_outside_inside_the_transaction(adapters, registry: Registry, tmp_path: Path) -> None:
    """Stopped with its inserts done and the write lock held: readers still answer (WAL) and do not see
    the version; SIGKILL from another process then leaves nothing behind."""
    before = adapters("list", "--json").stdout
    writer = cli_process.start_seed_writer(
        "ip", "ip@1", "version two", workdir=tmp_path / "w", ADAPTERS_FAULT="register-commit:stop"
    )
    writer.wait_until_stopped()
    assert adapters("list", "--json").stdout == before
    os.kill(writer.pid, signal.SIGKILL)
    assert writer.finish().returncode == -signal.SIGKILL
    assert assert_nothing_half_done(adapters, registry, before) == ["blob", "blob", "manifest"]


def test_full_disk_at_the_artifact_write(
    adapters, registry: Registry, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    before = adapters("list", "--json").stdout
    monkeypatch.setenv("ADAPTERS_FAULT", "blob-write@2:enospc")
    full = Settings.load().open_registry()
    with pytest.raises(StoreUnavailable) as caught:
        seed_version(full, "ip", weights=b"version two", parent="ip@1")
    message = str(caught.value)
    assert message == (
        f"cannot write to the artifact store {full.artifacts.url}: No space left on device "
        "(free some space, then run the command again)"
    )
    monkeypatch.delenv("ADAPTERS_FAULT")
    assert Settings.load().open_registry().checkout("ip@1", tmp_path / "out").is_dir()
    # The adapter stored before the disk filled is an orphan gc lists; no temporary file is left.
    assert assert_nothing_half_done(adapters, registry, before) == ["blob", "manifest"]

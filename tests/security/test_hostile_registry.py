"""Finding 9 (registry part) of issue 17: a version deleted out of band is found by ``verify``; stored
dataset copies are owner-only; a read-only registry is found before training, not after."""

import json
import sqlite3
import stat
from pathlib import Path

import pytest
from support.hostile import train_args
from support.seeding import seed_version

from loraledger.registry import Registry


def test_a_version_deleted_out_of_band_is_reported_missing(adapters, registry: Registry, home: Path) -> None:
    base = registry.resolve("ip@1").base
    seed_version(registry, "ip", weights=b"two", parent="ip@1", base=base)
    seed_version(registry, "ip", weights=b"three", parent="ip@2", base=base, promote=False)
    assert adapters("verify").exit_code == 0
    registry.store.engine.dispose()
    with sqlite3.connect(home / "registry.db") as connection:  # the sqlite3 shell: no foreign keys
        connection.execute(
            "DELETE FROM version WHERE number = 2 AND adapter_id = (SELECT id FROM adapter WHERE name = 'ip')"
        )
    result = adapters("verify")
    assert result.exit_code == 3, result.output
    assert "missing: version ip@2 (" in result.stdout + result.stderr
    report = json.loads(adapters("verify", "--json").stdout)
    [problem] = [p for p in report["problems"] if p["object"] == "version"]
    assert problem["digest"] == "ip@2" and problem["kind"] == "missing"
    assert problem["affects"] == ["numbered before ip@1 and ip@3"]


def test_stored_dataset_copies_are_owner_only(registry: Registry, home: Path) -> None:
    dataset = registry.resolve("ip@1").datasets[0].dataset
    assert dataset.blob is not None
    path = Path(registry.artifacts.blob_path(dataset.blob))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_read_only_registry_is_found_before_training(
    refused, registry: Registry, home: Path, data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry.store.engine.dispose()
    monkeypatch.setenv("ADAPTERS_DB", f"sqlite:///file:{home / 'registry.db'}?mode=ro&uri=true")
    # A run that got as far as its first step would hit the fault; the check must come before.
    monkeypatch.setenv("ADAPTERS_FAULT", "train-step:error")
    line = refused(*train_args("ip", "--data", str(data)), code=1)
    assert "is read-only" in line and "fault injected" not in line
    assert not (home / "runs").exists() or not any((home / "runs").iterdir())

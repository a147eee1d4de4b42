"""`adapters verify` and `adapters gc` on a registry whose versions are registered without training."""

import json
from pathlib import Path

import pytest
from support.seeding import seed_version

from loraledger.registry import Registry
from loraledger.registry.errors import Corrupt, NotFound
from loraledger.settings import Settings


@pytest.fixture
def registry() -> Registry:
    return Settings.load().open_registry()


def blob_file(registry: Registry, digest: str) -> Path:
    return Path(registry.artifacts.blob_path(digest))


def weights_blob(registry: Registry, ref: str) -> str:
    return registry.artifacts.manifest(registry.resolve(ref).artifact_digest)["adapter_model.safetensors"]


def test_verify_a_sound_registry(adapters, registry: Registry) -> None:
    seed_version(registry, "ip", weights=b"one")
    seed_version(registry, "ip", weights=b"two", parent="ip@1")
    seed_version(registry, "tax", weights=b"one")  # same adapter bytes as ip@1: stored once

    result = adapters("verify", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["ok"] is True and report["problems"] == [] and report["unreferenced"] == []
    # 3 versions, 2 distinct artifacts; blobs: 2 weights + 1 shared config + 3 dataset copies.
    assert (report["artifacts"], report["blobs"], report["datasets"]) == (2, 6, 3)
    assert registry.resolve("ip@1").artifact_digest == registry.resolve("tax@1").artifact_digest

    text = adapters("verify")
    assert text.exit_code == 0
    assert text.stdout.startswith("ok: checked 2 artifact(s), 6 distinct file(s) (3 dataset copies)")


def test_verify_reports_a_corrupt_file_with_every_version_it_breaks(adapters, registry: Registry) -> None:
    seed_version(registry, "ip", weights=b"one")
    seed_version(registry, "ip", weights=b"two", parent="ip@1")
    seed_version(registry, "tax", weights=b"two")
    before = adapters("list", "--json").stdout
    blob_file(registry, weights_blob(registry, "ip@2")).write_bytes(b"tw0")

    result = adapters("verify")
    assert result.exit_code == Corrupt.exit_code
    assert "corrupt: blob sha256:" in result.stdout
    assert "ip@2 adapter_model.safetensors, tax@1 adapter_model.safetensors" in result.stdout
    assert result.stderr.strip() == "error: 1 stored object(s) damaged (1 corrupt, 0 missing)"

    assert adapters("verify", "ip@1").exit_code == 0  # REF checks only that version
    assert adapters("verify", "tax").exit_code == Corrupt.exit_code
    problems = json.loads(adapters("verify", "--json").stdout)["problems"]
    assert [(p["kind"], p["object"]) for p in problems] == [("corrupt", "blob")]
    assert adapters("list", "--json").stdout == before  # verify changes nothing


def test_verify_reports_missing_objects_and_dataset_copies(adapters, registry: Registry) -> None:
    version = seed_version(registry, "ip", weights=b"one", rows=["first row", "second row"])
    dataset = version.datasets[0].dataset
    assert dataset.blob is not None
    blob_file(registry, dataset.blob).unlink()

    result = adapters("verify", "--json")
    assert result.exit_code == NotFound.exit_code
    (problem,) = json.loads(result.stdout)["problems"]
    assert problem["kind"] == "missing"
    assert problem["affects"] == [f"dataset {dataset.digest[:19]}… (ip.jsonl)"]

    Path(registry.artifacts.manifest_path(version.artifact_digest)).unlink()
    result = adapters("verify")
    assert result.exit_code == NotFound.exit_code
    assert "missing: manifest" in result.stdout and "(artifact of ip@1)" in result.stdout


def test_loading_a_corrupt_artifact_is_refused(registry: Registry, tmp_path: Path) -> None:
    seed_version(registry, "ip", weights=b"one")
    blob_file(registry, weights_blob(registry, "ip@1")).write_bytes(b"0ne")
    with pytest.raises(Corrupt) as caught:
        registry.checkout("ip", tmp_path / "out")
    message = str(caught.value)
    assert message.startswith("ip@1: adapter_model.safetensors (blob sha256:")
    assert message.endswith("is corrupt: refusing to load it (see `adapters verify ip@1`)")
    assert "\n" not in message


def test_gc_lists_then_deletes_only_with_yes(adapters, registry: Registry, tmp_path: Path) -> None:
    seed_version(registry, "ip", weights=b"kept")
    # What crashed runs leave: an adapter stored but never registered, a dataset copy, a temporary file.
    folder = tmp_path / "orphan"
    folder.mkdir()
    (folder / "adapter_model.safetensors").write_bytes(b"orphan weights")
    (folder / "adapter_config.json").write_text('{"r": 8, "lora_alpha": 16}\n')  # shared with ip@1
    orphan = registry.put_artifact(folder)
    stray = registry.artifacts.put_bytes(b'{"text":"never registered"}\n')
    tmp = Path(registry.artifacts.root) / "tmp"
    (tmp / "interrupted.part").write_bytes(b"half")
    before = adapters("list", "--json").stdout

    listed = adapters("gc", "--min-age", "0", "--json")
    assert listed.exit_code == 0, listed.output
    report = json.loads(listed.stdout)
    assert report["deleted"] is False
    names = sorted((item["kind"], item["name"]) for item in report["collectable"])
    orphan_weights = registry.artifacts.manifest(orphan)["adapter_model.safetensors"]
    assert names == sorted(
        [("manifest", orphan), ("blob", orphan_weights), ("blob", stray), ("temporary", "interrupted.part")]
    )
    assert (tmp / "interrupted.part").exists() and registry.artifacts.has_manifest(orphan)
    # verify reports the leftovers too (without failing: they are harmless); one version's check cannot
    verified = adapters("verify")
    assert verified.exit_code == 0
    assert "4 unreferenced object(s)" in verified.stdout and "`adapters gc` lists them" in verified.stdout
    assert json.loads(adapters("verify", "ip@1", "--json").stdout)["unreferenced"] is None

    text = adapters("gc", "--min-age", "0")
    assert "4 unreferenced object(s)" in text.stdout and "adapters gc --yes" in text.stdout

    deleted = adapters("gc", "--min-age", "0", "--yes")
    assert deleted.exit_code == 0
    assert "deleted 4 unreferenced object(s)" in deleted.stdout
    assert not registry.artifacts.has_manifest(orphan) and not (tmp / "interrupted.part").exists()
    assert adapters("gc", "--min-age", "0").stdout.strip() == "nothing to collect"
    assert adapters("verify").exit_code == 0  # the shared config blob of ip@1 survived
    assert adapters("list", "--json").stdout == before
    registry.checkout("ip@1", tmp_path / "out")


def test_gc_spares_young_objects_by_default(adapters, registry: Registry) -> None:
    seed_version(registry, "ip", weights=b"kept")
    stray = registry.artifacts.put_bytes(b"written by a run still evaluating")

    result = adapters("gc", "--yes")
    assert result.exit_code == 0
    assert "nothing to collect" in result.stdout
    assert "kept 1 unreferenced object(s) younger than 1d" in result.stdout
    assert registry.artifacts.has_blob(stray)
    assert json.loads(adapters("gc", "--json").stdout)["spared"][0]["name"] == stray


def test_gc_keeps_blobs_while_a_registered_manifest_is_damaged(adapters, registry: Registry) -> None:
    version = seed_version(registry, "ip", weights=b"kept")
    files = registry.artifacts.manifest(version.artifact_digest)
    Path(registry.artifacts.manifest_path(version.artifact_digest)).unlink()

    result = adapters("gc", "--min-age", "0", "--yes")
    assert result.exit_code == 0
    assert "1 registered artifact(s) are missing or corrupt" in result.stderr
    assert all(registry.artifacts.has_blob(blob) for blob in files.values())


@pytest.mark.parametrize("age", ["soon", "-1", "1w"])
def test_gc_rejects_a_bad_min_age(adapters, age: str) -> None:
    result = adapters("gc", "--min-age", age)
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and "invalid --min-age" in result.stderr


def test_registering_refuses_an_artifact_whose_files_were_collected(
    registry: Registry, tmp_path: Path
) -> None:
    from support.seeding import BASE

    from loraledger.schemas.records import NewVersion

    folder = tmp_path / "adapter"
    folder.mkdir()
    (folder / "adapter_model.safetensors").write_bytes(b"weights")
    (folder / "adapter_config.json").write_text("{}")
    artifact = registry.put_artifact(folder)
    blob_file(registry, registry.artifacts.manifest(artifact)["adapter_model.safetensors"]).unlink()
    with pytest.raises(NotFound, match=r"cannot register ip: adapter_model\.safetensors missing"):
        registry.register(NewVersion(name="ip", kind="train", base=BASE, artifact_digest=artifact))
    assert registry.versions() == []


def test_gc_spares_an_orphan_stored_again_after_it_was_listed(registry: Registry) -> None:
    import os
    import time

    from loraledger.registry import integrity

    orphan = registry.artifacts.put_bytes(b"left by a crash two days ago")
    two_days_ago = time.time() - 2 * 86400
    os.utime(blob_file(registry, orphan), (two_days_ago, two_days_ago))
    report = registry.garbage(min_age_seconds=86400)
    assert [item.name for item in report.collectable] == [orphan]

    registry.artifacts.put_bytes(b"left by a crash two days ago")  # a run about to register it
    done = integrity.collect(registry.artifacts, report)
    assert done.collectable == [] and [item.name for item in done.spared] == [orphan]
    assert registry.artifacts.has_blob(orphan)

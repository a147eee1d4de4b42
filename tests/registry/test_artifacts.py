"""The content-addressed artifact store, on a local folder and on S3 (moto's server on loopback)."""

import errno
from collections.abc import Iterator
from pathlib import Path

import pytest

from loraledger.registry.artifacts import ArtifactStore
from loraledger.registry.digests import bytes_digest, manifest_digest
from loraledger.registry.errors import Corrupt, InvalidInput, NotFound, StoreUnavailable


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ArtifactStore]:
    if request.param == "local":
        yield ArtifactStore(str(tmp_path / "artifacts"))
        return
    bucket, _options = request.getfixturevalue("s3_bucket")
    # Only the URL: endpoint and credentials come from the environment, as for a user.
    yield ArtifactStore(f"s3://{bucket}/team/artifacts")


def adapter_folder(root: Path, weights: bytes, config: bytes = b'{"r": 8}') -> Path:
    root.mkdir(parents=True)
    (root / "adapter_model.safetensors").write_bytes(weights)
    (root / "adapter_config.json").write_bytes(config)
    (root / "nested").mkdir()
    (root / "nested" / "notes.txt").write_bytes(b"kept as is\n")
    return root


def kinds(store: ArtifactStore) -> dict[str, int]:
    counts = {"manifest": 0, "blob": 0, "temporary": 0}
    for item in store.objects():
        counts[item.kind] += 1
    return counts


def overwrite(store: ArtifactStore, path: str, data: bytes) -> None:
    """Change stored bytes behind the store's back (bit rot, another tool, a hand edit)."""
    if store.local:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    store.fs.pipe_file(path, data)


def test_bytes_round_trip_and_dedup(store: ArtifactStore) -> None:
    digest = store.put_bytes(b"hello")
    assert digest == bytes_digest(b"hello")
    assert store.put_bytes(b"hello") == digest
    assert store.read_bytes(digest) == b"hello"
    assert kinds(store) == {"manifest": 0, "blob": 1, "temporary": 0}


def test_identical_adapters_are_stored_once(store: ArtifactStore, tmp_path: Path) -> None:
    first = store.put_folder(adapter_folder(tmp_path / "a", b"weights-1"))
    again = store.put_folder(adapter_folder(tmp_path / "b", b"weights-1"))
    other = store.put_folder(adapter_folder(tmp_path / "c", b"weights-2"))
    assert first == again != other
    # Two manifests; the config and notes are shared, so 2 weight blobs + 2 shared blobs.
    assert kinds(store) == {"manifest": 2, "blob": 4, "temporary": 0}
    files = store.manifest(first)
    assert sorted(files) == ["adapter_config.json", "adapter_model.safetensors", "nested/notes.txt"]
    assert first == manifest_digest(files)


def test_get_folder_round_trip(store: ArtifactStore, tmp_path: Path) -> None:
    digest = store.put_folder(adapter_folder(tmp_path / "a", b"\x00\x01" * 1000))
    out = store.get_folder(digest, tmp_path / "out")
    assert (out / "adapter_model.safetensors").read_bytes() == b"\x00\x01" * 1000
    assert (out / "nested" / "notes.txt").read_bytes() == b"kept as is\n"


def test_corrupt_blob_is_refused_on_load_and_reported(store: ArtifactStore, tmp_path: Path) -> None:
    digest = store.put_folder(adapter_folder(tmp_path / "a", b"weights"))
    blob = store.manifest(digest)["adapter_model.safetensors"]
    overwrite(store, store.blob_path(blob), b"weightz")  # same size: bit rot, not truncation
    with pytest.raises(Corrupt, match=r"adapter_model\.safetensors .* is corrupt: refusing to load it"):
        store.get_folder(digest, tmp_path / "out")
    assert not (tmp_path / "out" / "adapter_model.safetensors").exists()
    with pytest.raises(Corrupt):
        store.read_bytes(blob)
    size, problem = store.check_blob(blob)
    assert size == 7
    assert problem is not None and (problem.kind, problem.object) == ("corrupt", "blob")


def test_missing_blob_and_manifest(store: ArtifactStore, tmp_path: Path) -> None:
    digest = store.put_folder(adapter_folder(tmp_path / "a", b"weights"))
    blob = store.manifest(digest)["adapter_model.safetensors"]
    store.fs.rm_file(store.blob_path(blob))
    with pytest.raises(NotFound, match=r"adapter_model\.safetensors"):
        store.get_folder(digest, tmp_path / "out")
    assert store.check_blob(blob)[1] is not None
    store.fs.rm_file(store.manifest_path(digest))
    files, problem = store.check_manifest(digest)
    assert files == {} and problem is not None and problem.kind == "missing"


def test_corrupt_manifest(store: ArtifactStore, tmp_path: Path) -> None:
    digest = store.put_folder(adapter_folder(tmp_path / "a", b"weights"))
    overwrite(store, store.manifest_path(digest), b"adapter_model.safetensors:sha256:00\n")
    with pytest.raises(Corrupt, match="manifest"):
        store.get_folder(digest, tmp_path / "out")


def test_a_damaged_copy_is_repaired_by_storing_it_again(store: ArtifactStore) -> None:
    digest = store.put_bytes(b"0123456789")
    overwrite(store, store.blob_path(digest), b"01234")  # truncated by a crash of some other tool
    assert store.put_bytes(b"0123456789") == digest
    assert store.read_bytes(digest) == b"0123456789"


def test_full_disk_leaves_nothing_behind(store: ArtifactStore, tmp_path: Path) -> None:
    kept = store.put_bytes(b"registered earlier")

    def disk_full(kind: str, target: str) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    store.write_hook = disk_full
    with pytest.raises(StoreUnavailable, match="No space left on device") as caught:
        store.put_folder(adapter_folder(tmp_path / "a", b"weights"))
    assert "\n" not in str(caught.value)
    store.write_hook = None
    assert [item.name for item in store.objects()] == [kept]  # no half-written blob, no temporary file
    assert store.read_bytes(kept) == b"registered earlier"


def test_pickled_weights_are_refused_unless_allowed(store: ArtifactStore, tmp_path: Path) -> None:
    folder = tmp_path / "a"
    folder.mkdir()
    (folder / "adapter_model.bin").write_bytes(b"pickle")
    (folder / "adapter_config.json").write_bytes(b"{}")
    digest = store.put_folder(folder)
    with pytest.raises(InvalidInput, match=r"pickled weights \(adapter_model\.bin\).*--allow-pickle"):
        store.get_folder(digest, tmp_path / "out")
    assert not (tmp_path / "out" / "adapter_model.bin").exists()
    store.get_folder(digest, tmp_path / "out", allow_pickle=True)
    assert (tmp_path / "out" / "adapter_model.bin").read_bytes() == b"pickle"


def test_a_manifest_cannot_write_outside_its_folder(store: ArtifactStore, tmp_path: Path) -> None:
    blob = store.put_bytes(b"x")
    manifest = f"../escaped:{blob}\n".encode()
    digest = bytes_digest(manifest)
    overwrite(store, store.manifest_path(digest), manifest)
    with pytest.raises(Corrupt, match="outside its folder"):
        store.get_folder(digest, tmp_path / "out" / "inner")
    assert not (tmp_path / "out" / "escaped").exists()


def test_unreferenced(store: ArtifactStore, tmp_path: Path) -> None:
    live = store.put_folder(adapter_folder(tmp_path / "a", b"live"))
    dead = store.put_folder(adapter_folder(tmp_path / "b", b"dead"))
    dataset = store.put_bytes(b'{"text":"a"}\n')
    stray = store.put_bytes(b"stray")
    garbage, damaged = store.unreferenced([live], [dataset])
    dead_weights = store.manifest(dead)["adapter_model.safetensors"]
    assert damaged == 0
    assert sorted((item.kind, item.name) for item in garbage) == sorted(
        [("manifest", dead), ("blob", dead_weights), ("blob", stray)]
    )
    # While a registered manifest is unreadable, no blob counts as garbage: it may name any of them.
    store.fs.rm_file(store.manifest_path(live))
    garbage, damaged = store.unreferenced([live], [dataset])
    assert damaged == 1
    assert [(item.kind, item.name) for item in garbage] == [("manifest", dead)]


def test_local_write_is_atomic(tmp_path: Path) -> None:
    """A crash between write and rename leaves only a temporary file, which gc lists."""
    store = ArtifactStore(str(tmp_path / "artifacts"))

    def crash(kind: str, target: str) -> None:
        assert not Path(target).exists()  # nothing visible under the final name yet
        (leftovers,) = (tmp_path / "artifacts" / "tmp").iterdir()
        assert leftovers.read_bytes() == b"payload"  # complete and fsynced before the rename
        raise KeyboardInterrupt  # stands in for the process dying here

    store.write_hook = crash
    with pytest.raises(KeyboardInterrupt):
        store.put_bytes(b"payload")
    # An orderly interrupt cleans up; a kill -9 would not, so plant what it would leave.
    assert kinds(store) == {"manifest": 0, "blob": 0, "temporary": 0}
    (tmp_path / "artifacts" / "tmp" / "0123.part").write_bytes(b"pay")
    garbage, _ = store.unreferenced([], [])
    assert [(item.kind, item.name) for item in garbage] == [("temporary", "0123.part")]


def test_unknown_store_url_is_a_one_line_error() -> None:
    with pytest.raises(InvalidInput, match="cannot open the artifact store"):
        ArtifactStore("nosuchprotocol://bucket/prefix")


def test_storing_an_existing_blob_again_makes_it_young(tmp_path: Path) -> None:
    """gc spares young objects; a run about to register a blob that was already stored (and perhaps
    unreferenced for days) must make it young again, or gc could delete it under the run."""
    import os
    import time

    store = ArtifactStore(str(tmp_path / "artifacts"))
    digest = store.put_bytes(b"stored days ago by a crashed run")
    path = store.blob_path(digest)
    week_ago = time.time() - 7 * 86400
    os.utime(path, (week_ago, week_ago))
    (item,) = store.objects()
    assert item.modified is not None and item.modified.timestamp() < week_ago + 1
    store.put_bytes(b"stored days ago by a crashed run")
    (item,) = store.objects()
    assert item.modified is not None and item.modified.timestamp() > time.time() - 60

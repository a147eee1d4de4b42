"""Content-addressed artifact storage over fsspec: a local folder by default, any fsspec URL (s3://...)
by configuration.

Every file is a blob named by the sha256 of its bytes, so identical files (an adapter registered twice,
a dataset used by many versions) are stored once. An adapter folder is a *manifest*: sorted
``path:digest`` lines, itself stored as a blob whose digest is the artifact digest recorded on the
version. Local writes are atomic (temporary name, fsync, rename); object stores make each PUT atomic.
A blob is written before anything refers to it, so a crash leaves at most an unreferenced blob, which
``gc`` lists.
"""

import hashlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loraledger.registry.digests import CHUNK, bytes_digest, file_digest, manifest_digest, tag, untag
from loraledger.registry.errors import Corrupt, NotFound, StoreUnavailable


@dataclass(frozen=True)
class Problem:
    digest: str
    kind: str  # "missing" | "corrupt"
    detail: str


class ArtifactStore:
    def __init__(self, url: str, storage_options: dict[str, Any] | None = None) -> None:
        from fsspec.core import url_to_fs

        self.url = url.rstrip("/")
        self.fs, root = url_to_fs(self.url, **(storage_options or {}))
        self.root = root.rstrip("/")
        self.local = "file" in _protocols(self.fs)
        if self.local:
            Path(self.root).mkdir(parents=True, exist_ok=True)

    # ---- paths --------------------------------------------------------------------------------

    def _blob_path(self, digest: str) -> str:
        hex_digest = untag(digest)
        return f"{self.root}/blobs/{hex_digest[:2]}/{hex_digest}"

    def _manifest_path(self, digest: str) -> str:
        return f"{self.root}/manifests/{untag(digest)}"

    # ---- writing ------------------------------------------------------------------------------

    def put_bytes(self, data: bytes) -> str:
        digest = bytes_digest(data)
        self._write(self._blob_path(digest), data=data)
        return digest

    def put_file(self, path: Path) -> str:
        digest = file_digest(path)
        self._write(self._blob_path(digest), source=path)
        return digest

    def put_folder(self, folder: Path) -> str:
        """Store every file under ``folder``; return the artifact (manifest) digest."""
        files = {
            item.relative_to(folder).as_posix(): self.put_file(item)
            for item in sorted(folder.rglob("*"))
            if item.is_file()
        }
        if not files:
            raise NotFound(f"nothing to store: {folder} holds no files")
        manifest = _manifest_bytes(files)
        digest = bytes_digest(manifest)
        assert digest == manifest_digest(files)
        self._write(self._manifest_path(digest), data=manifest)
        return digest

    def _write(self, target: str, *, data: bytes | None = None, source: Path | None = None) -> None:
        if self.fs.exists(target):
            return  # content-addressed: same name, same bytes
        try:
            if self.local:
                _atomic_local_write(Path(target), data=data, source=source)
            elif data is not None:
                self.fs.pipe_file(target, data)
            else:
                assert source is not None
                self.fs.put_file(str(source), target)
        except OSError as exc:
            raise StoreUnavailable(
                f"cannot write to the artifact store {self.url}: {exc.strerror or exc}"
            ) from exc

    # ---- reading ------------------------------------------------------------------------------

    def read_bytes(self, digest: str) -> bytes:
        path = self._blob_path(digest)
        if not self.fs.exists(path):
            raise NotFound(f"blob {digest} is missing from the artifact store {self.url}")
        data: bytes = self.fs.cat_file(path)
        if bytes_digest(data) != digest:
            raise Corrupt(f"blob {digest} in {self.url} is corrupt (its bytes no longer match its digest)")
        return data

    def manifest(self, digest: str) -> dict[str, str]:
        path = self._manifest_path(digest)
        if not self.fs.exists(path):
            raise NotFound(f"artifact {digest} is missing from the artifact store {self.url}")
        data: bytes = self.fs.cat_file(path)
        if bytes_digest(data) != digest:
            raise Corrupt(f"the manifest of artifact {digest} in {self.url} is corrupt")
        return _parse_manifest(data, digest)

    def get_folder(self, digest: str, dest: Path) -> Path:
        """Write the artifact's files under ``dest``, checking every byte against its digest."""
        files = self.manifest(digest)
        dest.mkdir(parents=True, exist_ok=True)
        for relative, file_digest_ in files.items():
            target = dest / relative
            if not target.resolve().is_relative_to(dest.resolve()):
                raise Corrupt(f"artifact {digest} names a file outside its folder: {relative!r}")
            target.parent.mkdir(parents=True, exist_ok=True)
            self._copy_verified(file_digest_, target)
        return dest

    def _copy_verified(self, digest: str, target: Path) -> None:
        source = self._blob_path(digest)
        if not self.fs.exists(source):
            raise NotFound(f"blob {digest} ({target.name}) is missing from the artifact store {self.url}")
        hasher = hashlib.sha256()
        with self.fs.open(source, "rb") as reader, target.open("wb") as writer:
            while chunk := reader.read(CHUNK):
                hasher.update(chunk)
                writer.write(chunk)
        if tag(hasher.hexdigest()) != digest:
            target.unlink()
            raise Corrupt(f"{target.name} (blob {digest}) in {self.url} is corrupt: refusing to load it")

    # ---- checking and cleaning ----------------------------------------------------------------

    def verify(self, digest: str) -> list[Problem]:
        """Recompute every digest an artifact (manifest digest) or a plain blob depends on."""
        try:
            files = self.manifest(digest) if self.fs.exists(self._manifest_path(digest)) else None
        except Corrupt as exc:
            return [Problem(digest, "corrupt", str(exc))]
        if files is None:
            return self._verify_blob(digest, digest)
        problems = []
        for relative, blob in files.items():
            problems += self._verify_blob(blob, f"{relative} of {digest}")
        return problems

    def _verify_blob(self, digest: str, what: str) -> list[Problem]:
        path = self._blob_path(digest)
        if not self.fs.exists(path):
            return [Problem(digest, "missing", f"{what} is missing")]
        hasher = hashlib.sha256()
        with self.fs.open(path, "rb") as reader:
            while chunk := reader.read(CHUNK):
                hasher.update(chunk)
        if tag(hasher.hexdigest()) != digest:
            return [Problem(digest, "corrupt", f"{what} is corrupt")]
        return []

    def manifests(self) -> Iterator[str]:
        for path in self._listing(f"{self.root}/manifests"):
            yield tag(path.rsplit("/", 1)[-1])

    def blobs(self) -> Iterator[str]:
        for path in self._listing(f"{self.root}/blobs"):
            name = path.rsplit("/", 1)[-1]
            if len(name) == 64:
                yield tag(name)

    def _listing(self, prefix: str) -> list[str]:
        if not self.fs.exists(prefix):
            return []
        return sorted(str(path) for path in self.fs.find(prefix))

    def unreferenced(self, referenced: set[str]) -> tuple[list[str], list[str]]:
        """Manifests and blobs nothing refers to: (manifests, blobs)."""
        live_manifests = [m for m in self.manifests() if m in referenced]
        live_blobs = set(referenced)
        for manifest in live_manifests:
            try:
                live_blobs.update(self.manifest(manifest).values())
            except (Corrupt, NotFound):
                continue  # verify reports it; gc must not delete what a damaged manifest may name
        dead_manifests = [m for m in self.manifests() if m not in referenced]
        dead_blobs = [b for b in self.blobs() if b not in live_blobs]
        return dead_manifests, dead_blobs

    def delete(self, digest: str, *, manifest: bool) -> None:
        self.fs.rm_file(self._manifest_path(digest) if manifest else self._blob_path(digest))


def _protocols(fs: Any) -> set[str]:
    protocol = fs.protocol
    return {protocol} if isinstance(protocol, str) else set(protocol)


def _manifest_bytes(files: dict[str, str]) -> bytes:
    return "".join(f"{path}:{files[path]}\n" for path in sorted(files)).encode()


def _parse_manifest(data: bytes, digest: str) -> dict[str, str]:
    files = {}
    for line in data.decode().splitlines():
        path, sep, blob = line.rpartition(":sha256:")
        if not sep:
            raise Corrupt(f"the manifest of artifact {digest} is unreadable")
        files[path] = tag(blob)
    return files


def _atomic_local_write(target: Path, *, data: bytes | None, source: Path | None) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.parent / f".tmp-{uuid.uuid4().hex}"
    try:
        with temporary.open("wb") as writer:
            if data is not None:
                writer.write(data)
            else:
                assert source is not None
                with source.open("rb") as reader:
                    shutil.copyfileobj(reader, writer, CHUNK)
            writer.flush()
            os.fsync(writer.fileno())
        temporary.replace(target)
        _fsync_dir(target.parent)
    finally:
        temporary.unlink(missing_ok=True)


def _fsync_dir(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def scratch_dir(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"loraledger-{prefix}-"))

"""Content-addressed artifact storage over fsspec: a local folder by default, any fsspec URL (s3://...)
by configuration.

Layout under the store's root::

    blobs/ab/ab12...   the bytes of one file, named by their sha256
    manifests/ab12...  an adapter folder: sorted ``path:sha256:...`` lines; its own sha256 is the
                       artifact digest recorded on a version
    tmp/               local stores only: writes in progress, under temporary names

Identical files (an adapter registered twice, a dataset used by many versions) are stored once. Local
writes are atomic: the bytes go to ``tmp/``, are fsynced, then renamed into place, and the folder is
fsynced; object stores make each PUT atomic. A blob is written before anything refers to it and
nothing refers to a half-written one, so a crash leaves at most an unreferenced blob or a temporary
file, both of which ``unreferenced`` (``adapters gc``) lists. Everything read back is checked against
its digest.
"""

import contextlib
import errno
import hashlib
import os
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from loraledger.registry.digests import CHUNK, bytes_digest, file_digest, tag, untag
from loraledger.registry.errors import Corrupt, InvalidInput, NotFound, StoreUnavailable

ObjectKind = Literal["manifest", "blob", "temporary"]
# Called with ("blob" | "manifest", target) once the bytes are ready and before they become visible
# under their name: the CLI's fault-injection hook (ADAPTERS_FAULT) uses it to simulate a crash or a
# full disk at the worst moment.
WriteHook = Callable[[str, str], None]
# Re-storing a blob that already exists refreshes its modification time, so that `gc`, which spares
# recent objects, cannot delete a blob a run in progress is about to register. On object stores that
# costs a PUT, so it is done only when the object is older than this.
REFRESH_AFTER_SECONDS = 3600.0
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".ckpt")


@dataclass(frozen=True)
class Problem:
    """Something ``verify`` found wrong with one stored object."""

    kind: Literal["missing", "corrupt"]
    object: Literal["manifest", "blob"]
    digest: str
    detail: str


@dataclass(frozen=True)
class StoredObject:
    kind: ObjectKind
    name: str  # the digest of a manifest or blob; the file name of a temporary file
    path: str
    size: int
    modified: datetime | None


class ArtifactStore:
    """The narrow interface the registry needs: put, get (verified), check, list, delete."""

    def __init__(self, url: str, storage_options: dict[str, Any] | None = None) -> None:
        from fsspec.core import url_to_fs

        self.url = url.rstrip("/") or url
        # Listings must be fresh: another process may have written or collected objects since this
        # one last looked, and a stale "exists" would skip a write that is needed.
        options = {"use_listings_cache": False, "skip_instance_cache": True, **(storage_options or {})}
        try:
            self.fs, root = url_to_fs(self.url, **options)
        except (ImportError, ValueError) as exc:
            raise InvalidInput(f"cannot open the artifact store {url!r}: {exc}") from None
        self.root = root.rstrip("/")
        self.local = "file" in _protocols(self.fs)
        self.write_hook: WriteHook | None = None
        if self.local:
            Path(self.root).mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"ArtifactStore({self.url!r})"

    # ---- paths --------------------------------------------------------------------------------

    def blob_path(self, digest: str) -> str:
        hex_digest = untag(digest)
        return f"{self.root}/blobs/{hex_digest[:2]}/{hex_digest}"

    def manifest_path(self, digest: str) -> str:
        return f"{self.root}/manifests/{untag(digest)}"

    @property
    def _tmp(self) -> Path:
        return Path(self.root) / "tmp"

    # ---- writing ------------------------------------------------------------------------------

    def put_bytes(self, data: bytes, *, private: bool = False) -> str:
        """Store ``data``; ``private`` (dataset copies: they may hold what only their owner could read)
        makes a local copy readable by its owner only."""
        digest = bytes_digest(data)
        self._write("blob", self.blob_path(digest), data=data, private=private)
        return digest

    def put_file(self, path: Path) -> str:
        if self.local:
            return self._put_local_file(path)
        digest = file_digest(path)
        self._write("blob", self.blob_path(digest), source=path)
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
        self._write("manifest", self.manifest_path(digest), data=manifest)
        return digest

    def _write(
        self,
        kind: str,
        target: str,
        *,
        data: bytes | None = None,
        source: Path | None = None,
        private: bool = False,
    ) -> None:
        size = len(data) if data is not None else _size(source)
        try:
            if self._reuse(target, size):
                if private and self.local:
                    Path(target).chmod(0o600)  # content-addressed: same name, same bytes
                return
            if self.local:
                _atomic_local_write(
                    Path(target), self._tmp, data=data, source=source, hook=self._hook(kind), private=private
                )
                return
            self._hook(kind)(target)
            if data is not None:
                self.fs.pipe_file(target, data)
            else:
                assert source is not None
                self.fs.put_file(str(source), target)
        except OSError as exc:
            raise self._unavailable(exc) from exc

    def _put_local_file(self, path: Path) -> str:
        """Hash and copy in one pass into a temporary file, then rename it to its digest."""
        self._tmp.mkdir(parents=True, exist_ok=True)
        temporary = self._tmp / f"{uuid.uuid4().hex}.part"
        hasher = hashlib.sha256()
        try:
            with path.open("rb") as reader, temporary.open("wb") as writer:
                while chunk := reader.read(CHUNK):
                    hasher.update(chunk)
                    writer.write(chunk)
                writer.flush()
                os.fsync(writer.fileno())
            digest = tag(hasher.hexdigest())
            target = self.blob_path(digest)
            if not self._reuse(target, temporary.stat().st_size):
                self._hook("blob")(target)
                _publish(temporary, Path(target))
            return digest
        except OSError as exc:
            raise self._unavailable(exc) from exc
        finally:
            temporary.unlink(missing_ok=True)

    def _reuse(self, target: str, size: int) -> bool:
        """Whether ``target`` already holds these bytes (then its age is refreshed, see REFRESH_AFTER).

        A same-named object of another size is a damaged copy: it is overwritten, which repairs it."""
        try:
            info = self.fs.info(target)
        except FileNotFoundError:
            return False
        if int(info.get("size") or 0) != size:
            return False
        if self.local:
            with contextlib.suppress(OSError):
                os.utime(target)
            return True
        modified = _modified(info)
        return modified is not None and time.time() - modified.timestamp() < REFRESH_AFTER_SECONDS

    def _hook(self, kind: str) -> Callable[[str], None]:
        hook = self.write_hook
        return (lambda target: hook(kind, target)) if hook else (lambda target: None)

    def _unavailable(self, exc: OSError) -> StoreUnavailable:
        reason = exc.strerror or str(exc) or type(exc).__name__
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            reason = f"{reason} (free some space, then run the command again)"
        return StoreUnavailable(f"cannot write to the artifact store {self.url}: {reason}")

    # ---- reading ------------------------------------------------------------------------------

    def _unreadable(self, exc: OSError) -> StoreUnavailable:
        reason = exc.strerror or str(exc) or type(exc).__name__
        return StoreUnavailable(f"cannot read from the artifact store {self.url}: {reason}")

    def has_blob(self, digest: str) -> bool:
        return bool(self.fs.exists(self.blob_path(digest)))

    def has_manifest(self, digest: str) -> bool:
        return bool(self.fs.exists(self.manifest_path(digest)))

    def read_bytes(self, digest: str) -> bytes:
        path = self.blob_path(digest)
        try:
            data: bytes = self.fs.cat_file(path)
        except FileNotFoundError:
            raise NotFound(f"blob {digest} is missing from the artifact store {self.url}") from None
        except OSError as exc:
            raise self._unreadable(exc) from exc
        if bytes_digest(data) != digest:
            raise Corrupt(f"blob {digest} in {self.url} is corrupt (its bytes no longer match its digest)")
        return data

    def manifest(self, digest: str) -> dict[str, str]:
        """The files of an artifact (path -> blob digest), after checking the manifest's own digest."""
        try:
            data: bytes = self.fs.cat_file(self.manifest_path(digest))
        except FileNotFoundError:
            raise NotFound(f"artifact {digest} is missing from the artifact store {self.url}") from None
        except OSError as exc:
            raise self._unreadable(exc) from exc
        if bytes_digest(data) != digest:
            raise Corrupt(f"the manifest of artifact {digest} in {self.url} is corrupt")
        return _parse_manifest(data, digest)

    def get_folder(self, digest: str, dest: Path, *, allow_pickle: bool = False) -> Path:
        """Write the artifact's files under ``dest``, checking every byte against its digest."""
        files = self.manifest(digest)
        pickled = sorted(path for path in files if path.endswith(PICKLE_SUFFIXES))
        if pickled and not allow_pickle:
            raise InvalidInput(
                f"artifact {digest} holds pickled weights ({pickled[0]}); loading them can run "
                "arbitrary code: pass --allow-pickle if you trust where they came from"
            )
        dest.mkdir(parents=True, exist_ok=True)
        for relative, blob in files.items():
            target = dest / relative
            if not target.resolve().is_relative_to(dest.resolve()):
                raise Corrupt(f"artifact {digest} names a file outside its folder: {relative!r}")
            target.parent.mkdir(parents=True, exist_ok=True)
            self._copy_verified(blob, target, relative)
        return dest

    def _copy_verified(self, digest: str, target: Path, name: str) -> None:
        hasher = hashlib.sha256()
        try:
            with self.fs.open(self.blob_path(digest), "rb") as reader, target.open("wb") as writer:
                while chunk := reader.read(CHUNK):
                    hasher.update(chunk)
                    writer.write(chunk)
        except FileNotFoundError:
            target.unlink(missing_ok=True)
            raise NotFound(f"{name} (blob {digest}) is missing from the artifact store {self.url}") from None
        except OSError as exc:
            target.unlink(missing_ok=True)
            raise StoreUnavailable(f"cannot copy {name} out of the artifact store {self.url}: {exc}") from exc
        if tag(hasher.hexdigest()) != digest:
            target.unlink()
            raise Corrupt(f"{name} (blob {digest}) in {self.url} is corrupt: refusing to load it")

    # ---- checking -----------------------------------------------------------------------------

    def check_manifest(self, digest: str) -> tuple[dict[str, str], Problem | None]:
        """(files, None) for a sound manifest, ({}, problem) for a missing or corrupt one."""
        try:
            return self.manifest(digest), None
        except NotFound as exc:
            return {}, Problem("missing", "manifest", digest, str(exc))
        except Corrupt as exc:
            return {}, Problem("corrupt", "manifest", digest, str(exc))

    def check_blob(self, digest: str) -> tuple[int, Problem | None]:
        """Re-hash one blob: (bytes read, None) when sound, else the problem."""
        hasher = hashlib.sha256()
        size = 0
        try:
            with self.fs.open(self.blob_path(digest), "rb") as reader:
                while chunk := reader.read(CHUNK):
                    hasher.update(chunk)
                    size += len(chunk)
        except FileNotFoundError:
            return 0, Problem("missing", "blob", digest, "missing")
        except OSError as exc:
            raise self._unreadable(exc) from exc
        if tag(hasher.hexdigest()) != digest:
            return size, Problem("corrupt", "blob", digest, "corrupt: its bytes no longer match its digest")
        return size, None

    # ---- listing and cleaning -----------------------------------------------------------------

    def objects(self) -> list[StoredObject]:
        """Every manifest, blob and leftover temporary file in the store."""
        found = []
        for path, info in self._listing("manifests"):
            found.append(_object("manifest", path, info))
        for path, info in self._listing("blobs"):
            name = path.rsplit("/", 1)[-1]
            found.append(_object("blob" if _is_hex_digest(name) else "temporary", path, info))
        for path, info in self._listing("tmp"):
            found.append(_object("temporary", path, info))
        return found

    def _listing(self, folder: str) -> list[tuple[str, dict[str, Any]]]:
        prefix = f"{self.root}/{folder}"
        try:
            listing: dict[str, dict[str, Any]] = self.fs.find(prefix, detail=True)
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise self._unreadable(exc) from exc
        return sorted((str(path), info) for path, info in listing.items() if info.get("type") != "directory")

    def unreferenced(self, artifacts: Iterable[str], blobs: Iterable[str]) -> tuple[list[StoredObject], int]:
        """Objects nothing refers to, given the artifact (manifest) and blob digests the registry holds.

        Returns (garbage, damaged): while a referenced manifest is missing or unreadable, no blob is
        garbage (``damaged`` counts such manifests): gc cannot tell which blobs it named, and they are
        what a repair would need. ``verify`` reports the damage."""
        live_manifests = set(artifacts)
        live_blobs = set(blobs)
        damaged = 0
        for digest in live_manifests:
            files, problem = self.check_manifest(digest)
            damaged += problem is not None
            live_blobs.update(files.values())
        return self.garbage_among(live_manifests, live_blobs, damaged=damaged > 0), damaged

    def garbage_among(
        self, live_manifests: set[str], live_blobs: set[str], *, damaged: bool
    ) -> list[StoredObject]:
        """The stored objects outside ``live_manifests`` and ``live_blobs`` (every blob those manifests
        name included), for a caller that has read the manifests already; no blob while ``damaged``."""
        return [
            item
            for item in self.objects()
            if item.kind == "temporary"
            or (item.kind == "manifest" and item.name not in live_manifests)
            or (item.kind == "blob" and item.name not in live_blobs and not damaged)
        ]

    def delete(self, item: StoredObject, *, unless_modified_after: datetime | None = None) -> bool:
        """Delete one object; with ``unless_modified_after``, only if it has not been stored again since
        (a run re-storing an orphan makes it young: see ``_reuse``). Returns whether it was deleted."""
        try:
            if unless_modified_after is not None:
                modified = _modified(self.fs.info(item.path))
                if modified is not None and modified > unless_modified_after:
                    return False
            self.fs.rm_file(item.path)
        except FileNotFoundError:
            return False  # already gone: another gc got there first
        return True


# ---- helpers -------------------------------------------------------------------------------------


def _protocols(fs: Any) -> set[str]:
    protocol = fs.protocol
    return {protocol} if isinstance(protocol, str) else set(protocol)


def _size(path: Path | None) -> int:
    assert path is not None
    return path.stat().st_size


def _is_hex_digest(name: str) -> bool:
    return len(name) == 64 and all(c in "0123456789abcdef" for c in name)


def _modified(info: dict[str, Any]) -> datetime | None:
    """Modification time from an fsspec info dict (local: mtime; S3: LastModified)."""
    value = info.get("mtime", info.get("LastModified", info.get("last_modified")))
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            parsed = datetime.fromisoformat(value)
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def _object(kind: ObjectKind, path: str, info: dict[str, Any]) -> StoredObject:
    name = path.rsplit("/", 1)[-1]
    return StoredObject(
        kind=kind,
        name=tag(name) if kind != "temporary" else name,
        path=path,
        size=int(info.get("size") or 0),
        modified=_modified(info),
    )


def _manifest_bytes(files: dict[str, str]) -> bytes:
    """Sorted ``path:digest`` lines: the W&B manifest scheme, equal to ``digests.manifest_digest``."""
    return "".join(f"{path}:{files[path]}\n" for path in sorted(files)).encode()


def _parse_manifest(data: bytes, digest: str) -> dict[str, str]:
    files = {}
    try:
        for line in data.decode().splitlines():
            path, sep, blob = line.rpartition(":sha256:")
            if not sep or not path:
                raise ValueError(line)
            files[path] = tag(untag(tag(blob)))  # untag validates the hex digest
    except (UnicodeDecodeError, ValueError):
        raise Corrupt(f"the manifest of artifact {digest} is unreadable") from None
    return files


def _atomic_local_write(
    target: Path,
    tmp: Path,
    *,
    data: bytes | None,
    source: Path | None,
    hook: Callable[[str], None],
    private: bool = False,
) -> None:
    tmp.mkdir(parents=True, exist_ok=True)
    temporary = tmp / f"{uuid.uuid4().hex}.part"
    # A private file is created owner-only, not chmod-ed after: it is never readable by others.
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if private else 0o666)
    try:
        with os.fdopen(descriptor, "wb") as writer:
            if data is not None:
                writer.write(data)
            else:
                assert source is not None
                with source.open("rb") as reader:
                    while chunk := reader.read(CHUNK):
                        writer.write(chunk)
            writer.flush()
            os.fsync(writer.fileno())
        hook(str(target))
        _publish(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)


def _publish(temporary: Path, target: Path) -> None:
    """Rename a complete, fsynced file into place and make the rename itself durable."""
    created = not target.parent.exists()
    target.parent.mkdir(parents=True, exist_ok=True)
    if created:
        _fsync_dir(target.parent.parent)
    temporary.replace(target)
    _fsync_dir(target.parent)


def _fsync_dir(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)

"""A small Hugging Face Hub look-alike on loopback, for offline tests using the real `huggingface_hub`.

It speaks what huggingface_hub 2.4.0 sends for: `create_repo`, `upload_folder` / `create_commit`
(preupload, LFS batch + upload + verify, NDJSON commit), `create_tag`, `list_repo_refs`,
`list_repo_files` / `list_repo_tree`, `get_paths_info`, `model_info` / `repo_info`, and
`snapshot_download` / `hf_hub_download` (HEAD and GET on `/{repo}/resolve/{rev}/{path}`, single ranges).
Model repos only; no user accounts (repo ids must be `namespace/name`), no pull requests, no Xet
storage, no multipart LFS, no pagination.

Storage lives under the server's root folder: `objects/` holds file contents by id (git blob sha1 for
regular files, sha256 for LFS files) and `repos/{namespace}/{name}/repo.json` a repo's visibility,
branches, tags and every commit with its full file manifest. A server started on an existing root
serves the repos found there.

Auth: a request carrying a token not in `tokens` gets 401, like the Hub's "Invalid credentials". Writes
need a valid token; private repos answer 401 + RepoNotFound without one, as the Hub does. Every bearer
token received is appended to `.seen_tokens`, and every request ("METHOD /path") to `.requests`.

How callers point the client here (huggingface_hub 2.4.0 reads its settings once, at import):
- Pass `endpoint=server.url` to `HfApi`, `snapshot_download` and `hf_hub_download`. This always works.
- `HF_ENDPOINT` set during a test changes nothing by itself: `huggingface_hub.constants.ENDPOINT`,
  `HUGGINGFACE_CO_URL_TEMPLATE` and the module-level `HfApi` behind `huggingface_hub.create_repo`
  etc. were fixed at import. The `hub_env` fixture patches those (and the cache, token and offline
  constants) besides setting the variables, so code relying on the default endpoint lands here too,
  and subprocesses inherit the variables.
- hf_xet is installed, and while it is importable the client uploads through Xet storage, which this
  server does not speak, and `upload_folder` switches to a multi-commit pipeline. `hub_env` disables
  Xet (`HF_HUB_DISABLE_XET`); tests using the bare `hub_server` fixture must do the same.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import time
from collections.abc import Collection, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path, PurePosixPath
from typing import Any, cast
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

TEST_TOKEN = "hf_loraledger_test_token"
# Stored as LFS, as the Hub's default .gitattributes does for these suffixes; anything big goes to LFS too.
LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".h5", ".msgpack", ".onnx", ".gguf", ".pkl")
LFS_MIN_SIZE = 1_000_000
GITATTRIBUTES = "".join(f"*{suffix} filter=lfs diff=lfs merge=lfs -text\n" for suffix in LFS_SUFFIXES)


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


@dataclass
class FileEntry:
    size: int
    blob_id: str  # git id of the content, or of the LFS pointer for LFS files (what the Hub reports as "oid")
    sha256: str | None = None  # LFS files only: the content's sha256, its key in the object store

    @property
    def object_key(self) -> str:
        return self.sha256 or self.blob_id

    @property
    def pointer_size(self) -> int:
        return len(lfs_pointer(self.sha256, self.size)) if self.sha256 else 0

    def path_info(self, path: str) -> dict[str, Any]:
        info: dict[str, Any] = {"type": "file", "path": path, "size": self.size, "oid": self.blob_id}
        if self.sha256:
            info["lfs"] = {"oid": self.sha256, "size": self.size, "pointerSize": self.pointer_size}
        return info


@dataclass
class Commit:
    id: str
    parent: str | None
    title: str
    description: str
    date: str
    files: dict[str, FileEntry]


@dataclass
class Repo:
    repo_id: str
    private: bool
    created_at: str
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    commits: dict[str, Commit] = field(default_factory=dict)

    def resolve(self, revision: str) -> Commit:
        commit_id = self.branches.get(revision) or self.tags.get(revision) or revision
        if commit_id not in self.commits:
            raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return self.commits[commit_id]


class HubError(Exception):
    """An error answer; `code` goes to X-Error-Code, which the client maps to its error classes."""

    def __init__(self, status: int, message: str, code: str | None = None, **headers: str) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.headers = status, message, code, headers

    def response(self) -> Response:
        headers = {"X-Error-Message": self.message, **self.headers}
        if self.code:
            headers["X-Error-Code"] = self.code
        return _json({"error": self.message}, self.status, headers)


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


def _json(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    headers = {"Content-Type": "application/json", **(headers or {})}
    return Response(status, json.dumps(payload).encode(), headers)


@dataclass
class Request:
    method: str
    segments: list[str]
    query: dict[str, list[str]]
    authenticated: bool
    body: bytes
    range: str | None

    def json(self) -> Any:
        try:
            return json.loads(self.body or b"{}")
        except ValueError as error:
            raise HubError(400, f"Invalid JSON body: {error}") from error

    def flag(self, name: str) -> bool:
        return self.query.get(name, [""])[-1].lower() in ("1", "true")


class HubServer:
    def __init__(self, root: Path, tokens: Collection[str] = (TEST_TOKEN,)) -> None:
        self.root = root
        self.tokens = frozenset(tokens)
        self.seen_tokens: list[str] = []
        self.requests: list[str] = []
        self.url = ""
        self._objects = root / "objects"
        self._objects.mkdir(parents=True, exist_ok=True)
        self._repos = {repo.repo_id: repo for repo in map(_load_repo, root.glob("repos/*/*/repo.json"))}
        # sha256 -> size of LFS objects announced by a batch call and not uploaded yet: the upload URL needs
        # no token (the client sends none, as to a presigned URL), so it only accepts announced objects.
        self._pending_uploads: dict[str, int] = {}
        self._lock = threading.Lock()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> HubServer:
        self._httpd = _HTTPServer(self)
        self.url = f"http://127.0.0.1:{self._httpd.server_port}"
        # A short poll interval only makes stop() quick: shutdown() waits for the loop's next poll.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="hub-server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None and self._thread is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._thread.join()
            self._httpd = self._thread = None

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def respond(
        self, method: str, target: str, authorization: str | None, body: bytes, range_: str | None
    ) -> Response:
        url = urlsplit(target)
        token = authorization.removeprefix("Bearer ").strip() if authorization else None
        segments = [unquote(s) for s in url.path.strip("/").split("/")]
        request = Request(method, segments, parse_qs(url.query), token is not None, body, range_)
        # One lock for everything: requests are few and small, and it keeps repo updates atomic.
        with self._lock:
            self.requests.append(f"{method} {url.path}")
            if token is not None:
                self.seen_tokens.append(token)
            try:
                if token is not None and token not in self.tokens:
                    raise HubError(401, "Invalid credentials in Authorization header")
                return self._route(request)
            except HubError as error:
                return error.response()
            except (KeyError, TypeError, ValueError) as error:
                # A payload shaped differently from what this server expects: say so at once, rather than
                # dropping the connection, which the client would retry with backoff.
                return HubError(400, f"Malformed request for the test Hub server: {error!r}").response()

    def _route(self, req: Request) -> Response:
        seg, method = req.segments, req.method
        if seg == ["api", "repos", "create"] and method == "POST":
            return self._create_repo(req)
        if seg == ["api", "validate-yaml"] and method == "POST":
            return _json({"errors": [], "warnings": []})  # README metadata is accepted as is
        if len(seg) >= 4 and seg[:2] == ["api", "models"]:
            action, rest = (seg[4], seg[5:]) if len(seg) > 4 else ("", [])
            revision = rest[0] if rest else "main"
            write = action in ("preupload", "commit", "tag")
            repo = self._repo(f"{seg[2]}/{seg[3]}", req, write=write)
            if method == "GET" and action in ("", "revision"):
                return self._info(repo, revision, req)
            if method == "GET" and action == "refs":
                return self._refs(repo)
            if method == "GET" and action == "tree":
                return self._tree(repo, revision, "/".join(rest[1:]), req.flag("recursive"))
            if method == "POST" and action == "paths-info":
                return self._paths_info(repo, revision, req)
            if method == "POST" and action == "preupload":
                return self._preupload(repo, revision, req)
            if method == "POST" and action == "commit":
                return self._commit(repo, revision, req)
            if method == "POST" and action == "tag":
                return self._tag(repo, revision, req)
        if len(seg) == 6 and seg[1].endswith(".git") and seg[2:] == ["info", "lfs", "objects", "batch"]:
            return self._lfs_batch(self._repo(f"{seg[0]}/{seg[1][:-4]}", req, write=True), req)
        if seg[:1] == ["_lfs"] and len(seg) == 2 and method == "PUT":
            return self._lfs_upload(seg[1], req.body)
        if seg[:1] == ["_lfs"] and len(seg) == 3 and seg[2] == "verify" and method == "POST":
            return self._lfs_verify(seg[1], req)
        if len(seg) >= 5 and seg[2] == "resolve" and method in ("GET", "HEAD"):
            return self._resolve(self._repo(f"{seg[0]}/{seg[1]}", req), seg[3], "/".join(seg[4:]), req.range)
        raise HubError(404, f"{method} /{'/'.join(seg)} is not implemented by the test Hub server")

    def _repo(self, repo_id: str, req: Request, write: bool = False) -> Repo:
        repo = self._repos.get(repo_id)
        if repo is None:
            raise HubError(404, "Repository not found", "RepoNotFound")
        if repo.private and not req.authenticated:
            raise HubError(401, "Repository not found", "RepoNotFound")
        if write and not req.authenticated:
            raise HubError(401, "You must be authenticated to write to a repo")
        return repo

    def _create_repo(self, req: Request) -> Response:
        if not req.authenticated:
            raise HubError(401, "You must be authenticated to create a repo")
        payload = req.json()
        if payload.get("type", "model") != "model":
            raise HubError(400, "The test Hub server only hosts model repos")
        if not payload.get("organization"):
            raise HubError(400, "Give the repo id as 'namespace/name': the test Hub has no user accounts")
        repo_id = f"{payload['organization']}/{payload['name']}"
        url = f"{self.url}/{repo_id}"
        if repo_id in self._repos:
            # create_repo(exist_ok=True) reads "url" from this 409 answer.
            return _json({"error": "You already created this model repo", "url": url}, 409)
        repo = Repo(repo_id, private=payload.get("visibility") == "private", created_at=_now())
        # Like the Hub, a new repo has one commit holding .gitattributes, so `main` resolves at once.
        initial_files = {".gitattributes": self._store(GITATTRIBUTES.encode())}
        self._add_commit(repo, "main", "initial commit", "", initial_files)
        self._repos[repo_id] = repo
        return _json({"url": url, "name": repo_id})

    def _info(self, repo: Repo, revision: str, req: Request) -> Response:
        commit = repo.resolve(revision)
        siblings = []
        for path, entry in sorted(commit.files.items()):
            sibling: dict[str, Any] = {"rfilename": path}
            if req.flag("blobs"):  # files_metadata=True
                sibling.update(size=entry.size, blobId=entry.blob_id)
                if entry.sha256:
                    lfs = {"size": entry.size, "sha256": entry.sha256, "pointerSize": entry.pointer_size}
                    sibling["lfs"] = lfs
            siblings.append(sibling)
        return _json(
            {
                "_id": repo.repo_id,
                "id": repo.repo_id,
                "modelId": repo.repo_id,
                "author": repo.repo_id.split("/")[0],
                "sha": commit.id,
                "lastModified": commit.date,
                "createdAt": repo.created_at,
                "private": repo.private,
                "gated": False,
                "disabled": False,
                "downloads": 0,
                "likes": 0,
                "tags": [],
                "siblings": siblings,
            }
        )

    def _refs(self, repo: Repo) -> Response:
        def refs(kind: str, targets: dict[str, str]) -> list[dict[str, str]]:
            return [
                {"name": name, "ref": f"refs/{kind}/{name}", "targetCommit": commit_id}
                for name, commit_id in sorted(targets.items())
            ]

        return _json(
            {
                "branches": refs("heads", repo.branches),
                "tags": refs("tags", repo.tags),
                "converts": [],
                "pullRequests": [],
            }
        )

    def _tree(self, repo: Repo, revision: str, path: str, recursive: bool) -> Response:
        infos = _path_infos(repo.resolve(revision))
        if path and infos.get(path, {}).get("type") != "directory":
            raise HubError(404, f"{path} is not a folder at {revision}", "EntryNotFound")
        base = f"{path}/" if path else ""
        return _json(
            [
                info
                for p, info in sorted(infos.items())
                if p.startswith(base) and (recursive or "/" not in p[len(base) :])
            ]
        )

    def _paths_info(self, repo: Repo, revision: str, req: Request) -> Response:
        infos = _path_infos(repo.resolve(revision))
        paths = parse_qs(req.body.decode()).get("paths", [])  # sent as a form, not JSON
        return _json([infos[p] for p in paths if p in infos])

    def _preupload(self, repo: Repo, revision: str, req: Request) -> Response:
        commit = repo.resolve(revision)
        answers = []
        for file in req.json()["files"]:
            existing = commit.files.get(file["path"])
            lfs = file["path"].endswith(LFS_SUFFIXES) or file["size"] > LFS_MIN_SIZE
            answers.append(
                {
                    "path": file["path"],
                    "uploadMode": "lfs" if lfs else "regular",
                    "shouldIgnore": False,
                    # The client skips unchanged files by comparing this with its sha256 (LFS) or git blob id.
                    "oid": existing.object_key if existing else None,
                }
            )
        return _json({"files": answers, "commitOid": commit.id})

    def _lfs_batch(self, repo: Repo, req: Request) -> Response:
        payload = req.json()
        if payload.get("operation") != "upload":
            raise HubError(400, "Only LFS uploads go through the batch API (downloads use /resolve)")
        answers = []
        for obj in payload["objects"]:
            oid, size = obj["oid"], obj["size"]
            answer = {"oid": oid, "size": size}
            if not self._lfs_object(oid).exists():  # stored objects get no actions: the client skips them
                self._pending_uploads[oid] = size
                answer["authenticated"] = True
                answer["actions"] = {
                    "upload": {"href": f"{self.url}/_lfs/{oid}", "header": {}},
                    "verify": {"href": f"{self.url}/_lfs/{oid}/verify", "header": {}},
                }
            answers.append(answer)
        lfs_json = {"Content-Type": "application/vnd.git-lfs+json"}
        return _json({"transfer": "basic", "objects": answers}, headers=lfs_json)

    def _lfs_upload(self, oid: str, body: bytes) -> Response:
        size = self._pending_uploads.get(oid)
        if size is None:
            raise HubError(403, "No upload of this object was announced through the LFS batch API")
        if len(body) != size or hashlib.sha256(body).hexdigest() != oid:
            raise HubError(400, "Uploaded content does not match the announced oid and size")
        self._lfs_object(oid).write_bytes(body)
        del self._pending_uploads[oid]
        return Response(200)

    def _lfs_verify(self, oid: str, req: Request) -> Response:
        if not req.authenticated:
            raise HubError(401, "You must be authenticated to verify an upload")
        stored = self._lfs_object(oid)
        if not stored.exists() or stored.stat().st_size != req.json().get("size"):
            raise HubError(404, f"LFS object {oid} was not uploaded")
        return _json({})

    def _commit(self, repo: Repo, branch: str, req: Request) -> Response:
        if branch not in repo.branches:
            raise HubError(404, f"Invalid rev id: {branch} is not a branch", "RevisionNotFound")
        head = repo.commits[repo.branches[branch]]
        files, header = dict(head.files), None
        for line in req.body.splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            key, value = item["key"], item["value"]
            if key == "header":
                header = value
            elif key == "file":
                files[value["path"]] = self._store(base64.b64decode(value["content"]))
            elif key == "lfsFile":
                files[value["path"]] = self._lfs_entry(value["oid"])
            elif key == "deletedFile":
                if files.pop(value["path"], None) is None:
                    message = f"A file with this name doesn't exist: {value['path']}"
                    raise HubError(404, message, "EntryNotFound")
            elif key == "deletedFolder":
                prefix = value["path"].rstrip("/") + "/"
                files = {p: e for p, e in files.items() if not p.startswith(prefix)}
            else:
                raise HubError(400, f"Unknown commit operation {key!r}")
        if header is None:
            raise HubError(400, "The commit payload has no header line")
        if header.get("parentCommit") not in (None, head.id):
            raise HubError(412, "A commit has happened since. Please refresh and try again.")
        commit = self._add_commit(repo, branch, header["summary"], header.get("description", ""), files)
        url = f"{self.url}/{repo.repo_id}/commit/{commit.id}"
        return _json({"success": True, "commitOid": commit.id, "commitUrl": url, "pullRequestUrl": None})

    def _tag(self, repo: Repo, revision: str, req: Request) -> Response:
        commit = repo.resolve(revision)
        tag = req.json()["tag"]
        if tag in repo.tags:
            raise HubError(409, f"Tag {tag} already exists")
        repo.tags[tag] = commit.id
        self._save(repo)
        return _json({})

    def _resolve(self, repo: Repo, revision: str, path: str, range_: str | None) -> Response:
        commit = repo.resolve(revision)
        entry = commit.files.get(path)
        if entry is None:
            # X-Repo-Commit lets the client cache the file's absence for this commit.
            message = f"{path} does not exist at {revision}"
            raise HubError(404, message, "EntryNotFound", **{"X-Repo-Commit": commit.id})
        data = (self._objects / entry.object_key).read_bytes()
        headers = {
            "ETag": f'"{entry.blob_id}"',
            "X-Repo-Commit": commit.id,
            "Accept-Ranges": "bytes",
            "Content-Type": "application/octet-stream",
        }
        if entry.sha256:  # the client keys LFS files by the linked etag and takes their size from here
            headers.update({"X-Linked-Etag": f'"{entry.sha256}"', "X-Linked-Size": str(entry.size)})
        match = re.fullmatch(r"bytes=(\d+)-(\d*)", range_ or "")
        if match is None:  # no range, or one we do not parse: the whole file, as HTTP allows
            return Response(200, data, headers)
        start = int(match[1])
        end = min(int(match[2] or len(data) - 1), len(data) - 1)
        if start > end:
            raise HubError(416, "Range Not Satisfiable", **{"Content-Range": f"bytes */{len(data)}"})
        headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
        return Response(206, data[start : end + 1], headers)

    def _store(self, data: bytes) -> FileEntry:
        blob_id = git_blob_id(data)
        if not (self._objects / blob_id).exists():
            (self._objects / blob_id).write_bytes(data)
        return FileEntry(len(data), blob_id)

    def _lfs_object(self, sha256: str) -> Path:
        # Checked, since the id becomes a file name and some arrive in URLs the client does not authenticate.
        if not re.fullmatch(r"[0-9a-f]{64}", sha256):
            raise HubError(400, f"{sha256!r} is not a sha256 LFS object id")
        return self._objects / sha256

    def _lfs_entry(self, sha256: str) -> FileEntry:
        stored = self._lfs_object(sha256)
        if not stored.exists():
            raise HubError(400, f"LFS object {sha256} has not been uploaded")
        size = stored.stat().st_size
        return FileEntry(size, git_blob_id(lfs_pointer(sha256, size)), sha256)

    def _add_commit(
        self, repo: Repo, branch: str, title: str, description: str, files: dict[str, FileEntry]
    ) -> Commit:
        parent = repo.branches.get(branch)
        manifest = json.dumps({path: asdict(entry) for path, entry in files.items()}, sort_keys=True)
        # Time and history length make every commit id unique, even for identical trees and messages.
        seed = f"{parent}\n{title}\n{description}\n{time.time_ns()}\n{len(repo.commits)}\n{manifest}"
        commit = Commit(hashlib.sha1(seed.encode()).hexdigest(), parent, title, description, _now(), files)
        repo.commits[commit.id] = commit
        repo.branches[branch] = commit.id
        self._save(repo)
        return commit

    def _save(self, repo: Repo) -> None:
        path = self.root / "repos" / repo.repo_id / "repo.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(repo), indent=1))


def _load_repo(path: Path) -> Repo:
    data = json.loads(path.read_text())
    commits = {
        commit_id: Commit(**{**c, "files": {p: FileEntry(**e) for p, e in c["files"].items()}})
        for commit_id, c in data.pop("commits").items()
    }
    return Repo(**data, commits=commits)


def _path_infos(commit: Commit) -> dict[str, dict[str, Any]]:
    """Tree entries of a commit by path: its files and every folder above them."""
    infos: dict[str, dict[str, Any]] = {}
    for path, entry in commit.files.items():
        infos[path] = entry.path_info(path)
        for folder in map(str, PurePosixPath(path).parents[:-1]):
            folder_id = hashlib.sha1(f"{commit.id}:{folder}".encode()).hexdigest()
            infos.setdefault(folder, {"type": "directory", "path": folder, "oid": folder_id, "size": 0})
    return infos


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, hub: HubServer) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.hub = hub


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.0: one request per connection, so a response never has to be framed for reuse.
    def _serve(self) -> None:
        if "chunked" in self.headers.get("Transfer-Encoding", ""):
            response = HubError(411, "Send a Content-Length; chunked bodies are not supported").response()
        else:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            hub = cast(_HTTPServer, self.server).hub
            response = hub.respond(
                self.command, self.path, self.headers.get("Authorization"), body, self.headers.get("Range")
            )
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    do_GET = do_HEAD = do_POST = do_PUT = _serve  # noqa: N815

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: `HubServer.requests` records what tests need."""


@pytest.fixture
def hub_server(tmp_path: Path) -> Iterator[HubServer]:
    with HubServer(tmp_path / "hub") as server:
        yield server


@pytest.fixture
def hub_env(hub_server: HubServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[HubServer]:
    """`hub_server`, with the environment and huggingface_hub's import-time constants pointed at it."""
    from huggingface_hub import constants, hf_api

    hf_home = tmp_path / "hf_home"
    environment = {
        "HF_ENDPOINT": hub_server.url,
        "HF_TOKEN": TEST_TOKEN,
        "HF_HOME": str(hf_home),
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_OFFLINE": "0",
        "HF_HUB_DISABLE_XET": "1",
    }
    for variable, text in environment.items():
        monkeypatch.setenv(variable, text)
    constant_values: dict[str, object] = {
        "ENDPOINT": hub_server.url,
        "HUGGINGFACE_CO_URL_TEMPLATE": hub_server.url + "/{repo_id}/resolve/{revision}/{filename}",
        "HF_HUB_OFFLINE": False,
        "HF_HUB_DISABLE_XET": True,
        "HF_HUB_DISABLE_TELEMETRY": True,
        "HF_HUB_DISABLE_IMPLICIT_TOKEN": False,
        "HF_HOME": str(hf_home),
        "HF_HUB_CACHE": str(hf_home / "hub"),
        "HF_ASSETS_CACHE": str(hf_home / "assets"),
        "HF_XET_CACHE": str(hf_home / "xet"),
        "HF_TOKEN_PATH": str(hf_home / "token"),
        "HF_STORED_TOKENS_PATH": str(hf_home / "stored_tokens"),
    }
    for name, value in constant_values.items():
        monkeypatch.setattr(constants, name, value)
    monkeypatch.setattr(hf_api.api, "endpoint", hub_server.url)  # behind huggingface_hub.create_repo & co.
    yield hub_server

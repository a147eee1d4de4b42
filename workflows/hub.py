"""The Hugging Face Hub calls behind ``push`` and ``import``, and their errors as one-line LedgerErrors.

The token is huggingface_hub's business: it reads ``HF_TOKEN`` or the file ``hf auth login`` wrote.
loraledger never asks for it, passes it on, logs it, stores it or writes it anywhere; it only checks
that one exists before a push, to fail early with a useful message.

A push is one commit, made with ``create_commit`` and explicit operations (``upload_folder`` may split a
large folder into several commits), then a tag on exactly that commit.
"""

import importlib
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from loraledger.schemas.errors import Conflict, InvalidInput, LedgerError, NotFound

log = logging.getLogger("loraledger.hub")
# Files the Hub creates with a repo; a push leaves them alone.
HUB_OWNED = frozenset({".gitattributes"})


class HubUnavailable(LedgerError):
    """The Hub refused the request or could not be reached."""


@dataclass(frozen=True)
class PushOutcome:
    repo_id: str
    repo_url: str
    endpoint: str
    commit_id: str
    commit_url: str
    tag: str
    private: bool
    files: list[str]
    deleted: list[str] = field(default_factory=list)
    seconds: float = 0.0


@contextmanager
def hub_errors(action: str) -> Iterator[None]:
    """Turn huggingface_hub and HTTP errors raised inside into one-line LedgerErrors about ``action``."""
    from huggingface_hub.errors import (
        HfHubHTTPError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RemoteEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    network_error = _http_error_class()
    try:
        yield
    except RepositoryNotFoundError:
        raise NotFound(
            f"{action}: no such repository, or it is private and the token may not read it"
        ) from None
    except (RevisionNotFoundError, RemoteEntryNotFoundError) as exc:
        raise NotFound(f"{action}: {_server_message(exc)}") from None
    except HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else None
        if status == 401:
            raise HubUnavailable(
                f"{action}: the Hub refused the token (401): log in with `hf auth login` or set HF_TOKEN"
            ) from None
        if status == 403:
            raise HubUnavailable(
                f"{action}: the token may not do this (403): {_server_message(exc)}"
            ) from None
        raise HubUnavailable(f"{action}: the Hub answered {status}: {_server_message(exc)}") from None
    except OfflineModeIsEnabled:
        raise HubUnavailable(f"{action}: HF_HUB_OFFLINE is set; unset it to reach the Hub") from None
    except LocalEntryNotFoundError as exc:
        raise HubUnavailable(
            f"{action}: the Hub could not be reached and nothing is cached ({exc})"
        ) from None
    except network_error as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise HubUnavailable(f"{action}: cannot reach the Hub: {type(exc).__name__}: {reason}") from None


def _http_error_class() -> type[Exception]:
    """httpx's HTTPError, the base of the client's HTTP and connection errors: huggingface_hub 2.x
    ships httpx as the module ``httpx2``, 1.x uses ``httpx`` itself."""
    for module in ("httpx2", "httpx"):
        try:
            found: type[Exception] = importlib.import_module(module).HTTPError
        except ImportError:
            continue
        return found
    raise ImportError("huggingface_hub's HTTP library (httpx) is not installed")


def _server_message(exc: Exception) -> str:
    """The server's own explanation when it sent one, else the client's first line."""
    message = getattr(exc, "server_message", None) or str(exc)
    lines = [line.strip() for line in str(message).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def require_token() -> None:
    from huggingface_hub import get_token

    if get_token() is None:
        raise HubUnavailable("no Hugging Face token: log in with `hf auth login` or set HF_TOKEN")


def push_folder(
    folder: Path, repo_id: str, *, tag: str, private: bool, message: str, description: str
) -> PushOutcome:
    """Upload every file under ``folder`` to ``repo_id`` in one commit (removing files it no longer
    has), tag that commit ``tag``; create the repository first when needed."""
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi

    require_token()
    api = HfApi()
    started = time.perf_counter()
    action = f"pushing to {repo_id}"
    with hub_errors(action):
        repo_url = api.create_repo(repo_id, private=private, exist_ok=True)
        refs = api.list_repo_refs(repo_id)
        if any(existing.name == tag for existing in refs.tags):
            raise Conflict(f"{repo_id} already has a tag {tag}: each version is pushed once per repository")
        head = next((branch.target_commit for branch in refs.branches if branch.name == "main"), None)
        if private and not api.model_info(repo_id).private:
            log.warning(
                "%s already exists and is public: --private applies only to new repositories", repo_id
            )
        files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
        stale = sorted(set(api.list_repo_files(repo_id, revision=head)) - set(files) - HUB_OWNED)
        operations: list[CommitOperationAdd | CommitOperationDelete] = [
            CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(folder / name)) for name in files
        ]
        operations += [CommitOperationDelete(path_in_repo=name) for name in stale]
        log.info("%s: committing %d files, removing %d, on top of %s", repo_id, len(files), len(stale), head)
        commit = api.create_commit(
            repo_id,
            operations=operations,
            commit_message=message,
            commit_description=description,
            parent_commit=head,
        )
        api.create_tag(repo_id, tag=tag, revision=commit.oid, tag_message=message)
        log.info("%s: commit %s tagged %s", repo_id, commit.oid, tag)
    return PushOutcome(
        repo_id=repo_id,
        repo_url=str(repo_url),
        endpoint=api.endpoint,
        commit_id=commit.oid,
        commit_url=commit.commit_url,
        tag=tag,
        private=private,
        files=files,
        deleted=stale,
        seconds=time.perf_counter() - started,
    )


def download_adapter(repo_id: str, revision: str | None, dest: Path) -> tuple[Path, str]:
    """A Hub adapter's config and safetensors weights; returns (folder, commit id)."""
    from huggingface_hub import HfApi

    from loraledger.trainer import adapterfiles

    api = HfApi()
    with hub_errors(f"downloading {repo_id}"):
        commit = api.model_info(repo_id, revision=revision).sha
        assert commit is not None
        files = set(api.list_repo_files(repo_id, revision=commit))
        if adapterfiles.WEIGHTS_FILE not in files:
            pickled = adapterfiles.PICKLED_WEIGHTS_FILE in files
            raise (InvalidInput if pickled else NotFound)(
                f"{repo_id} has no {adapterfiles.WEIGHTS_FILE}"
                + (
                    " (only a pickled adapter_model.bin): only safetensors adapters are accepted"
                    if pickled
                    else ""
                )
            )
        folder = api.snapshot_download(
            repo_id,
            revision=commit,
            local_dir=dest,
            allow_patterns=[adapterfiles.CONFIG_FILE, adapterfiles.WEIGHTS_FILE],
        )
    return Path(folder), commit

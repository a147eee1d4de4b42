"""Getting a version out of the registry: merged into its base, exported for a server, pushed to the Hub.
Each is recorded on the version as a publication (kind merge, export or push) with what was produced.

    merge:  checkout -> base at full precision (also for 4-bit-trained adapters) -> merge_and_unload
            -> check logits against base + adapter -> save model + tokenizer -> record
    export: checkout -> PEFT folder NAME-vN naming the canonical base (+ vLLM / LoRAX settings) -> record
    push:   checkout (or merge) -> model card from the registry -> one Hub commit -> tag vN -> record
"""

import logging
import re
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from loraledger.bases import recorded_base
from loraledger.registry import Registry
from loraledger.schemas.errors import InvalidInput
from loraledger.schemas.records import Publication, VersionRecord
from loraledger.settings import Settings

if TYPE_CHECKING:
    from loraledger.hub import PushOutcome
    from loraledger.trainer.export import ExportOutcome
    from loraledger.trainer.merge import MergeOutcome

Stage = Callable[[str], None]
REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}$")
# Loggers written to a push's log file: ours, and the Hub client's requests (it hides the token).
PUSH_LOGGERS = ("loraledger", "huggingface_hub")


@dataclass
class MergeResult:
    version: VersionRecord
    outcome: "MergeOutcome"
    details: dict[str, Any]


@dataclass
class ExportResult:
    version: VersionRecord
    outcome: "ExportOutcome"


@dataclass
class PushResult:
    version: VersionRecord
    outcome: "PushOutcome"
    details: dict[str, Any]
    log_file: Path


def _record(
    registry: Registry,
    version: VersionRecord,
    kind: Literal["push", "merge", "export"],
    target: str,
    details: dict[str, Any],
) -> None:
    registry.record_publication(
        version.ref,
        Publication(
            kind=kind,
            target=target,
            details=details,
            created_at=datetime.now(UTC),
            created_by=registry.user,
        ),
    )


def _merge(
    settings: Settings, registry: Registry, version: VersionRecord, out: Path, dtype: str, stage: Stage
) -> tuple["MergeOutcome", dict[str, Any]]:
    from loraledger.trainer.merge import merge_adapter

    with tempfile.TemporaryDirectory(prefix="loraledger-merge-") as scratch:
        adapter = registry.checkout(version.ref, Path(scratch) / "adapter")
        stage(f"loading base {version.base.model_id} at full precision")
        source = recorded_base(settings, version.base)
        stage(f"merging {version.ref} and checking its logits")
        outcome = merge_adapter(source, adapter, out, dtype=dtype)
    details = {
        "path": str(outcome.output_dir.resolve()),
        "dtype": outcome.dtype,
        "max_logit_diff": outcome.max_logit_diff,
        "saved_max_logit_diff": outcome.saved_max_logit_diff,
        "tolerance": outcome.tolerance,
        "probe": outcome.probe,
        # The adapter was trained against these weights (quantized or not); the merge used fp32.
        "trained_quantize": version.training.get("quantize", "none"),
        "files": outcome.files,
    }
    return outcome, details


def run_merge(
    settings: Settings, ref: str, out: Path, *, dtype: str = "fp32", stage: Stage = lambda message: None
) -> MergeResult:
    registry = settings.open_registry()
    version = registry.resolve(ref)
    outcome, details = _merge(settings, registry, version, out, dtype, stage)
    _record(registry, version, "merge", details["path"], details)
    return MergeResult(version=version, outcome=outcome, details=details)


def run_export(
    settings: Settings, ref: str, dest: Path | str, *, format: str = "peft", replace: bool = False
) -> ExportResult:
    from loraledger.trainer.export import export_adapter

    if not str(dest).strip():  # Path("") is ".": an empty argument would write into the working folder
        raise InvalidInput(f"give a destination folder for the export (got {str(dest)!r})")
    dest = Path(dest)
    registry = settings.open_registry()
    version = registry.resolve(ref)
    with tempfile.TemporaryDirectory(prefix="loraledger-export-") as scratch:
        adapter = registry.checkout(version.ref, Path(scratch) / "adapter")
        outcome = export_adapter(
            adapter,
            dest,
            module_name=f"{version.name}-v{version.number}",
            base_id=version.base.model_id,
            base_revision=version.base.revision,
            format=format,
            replace=replace,
        )
    _record(registry, version, "export", str(outcome.adapter_dir.resolve()), outcome.record())
    return ExportResult(version=version, outcome=outcome)


def run_push(
    settings: Settings,
    ref: str,
    repo_id: str,
    *,
    merged: bool = False,
    private: bool = False,
    dtype: str = "fp32",
    stage: Stage = lambda message: None,
) -> PushResult:
    from loraledger.hub import push_folder, require_token
    from loraledger.modelcard import build_card

    if not REPO_ID.fullmatch(repo_id) or ".." in repo_id:
        raise InvalidInput(f"invalid --repo {repo_id!r}: give the Hub repository as OWNER/NAME")
    require_token()  # before any work, not after a merge
    registry = settings.open_registry()
    version = registry.resolve(ref)
    log_file = settings.runs_dir / f"push-{version.name}-v{version.number}.log"
    with _push_log(log_file), tempfile.TemporaryDirectory(prefix="loraledger-push-") as scratch:
        logging.getLogger("loraledger.push").info(
            "pushing %s to %s (merged=%s)", version.ref, repo_id, merged
        )
        folder = Path(scratch) / "repo"
        merge_details = None
        if merged:
            _, merge_details = _merge(settings, registry, version, folder, dtype, stage)
            merge_details.pop("path")  # a temporary folder
        else:
            registry.checkout(version.ref, folder)
        card = build_card(
            registry,
            version,
            repo_id=repo_id,
            relation="merge" if merged else "adapter",
            merge=merge_details,
        )
        (folder / "README.md").write_text(card, encoding="utf-8")
        stage(f"pushing {version.ref} to {repo_id}")
        outcome = push_folder(
            folder,
            repo_id,
            tag=f"v{version.number}",
            private=private,
            message=f"{version.ref}: {'merged model' if merged else 'LoRA adapter'}",
            description=f"{version.kind} version {version.number} of {version.name}, artifact "
            f"{version.artifact_digest}, base {version.base.model_id}",
        )
    details: dict[str, Any] = {
        "repo": outcome.repo_id,
        "commit": outcome.commit_id,
        "tag": outcome.tag,
        "kind": "merged" if merged else "adapter",
        "private": outcome.private,
        "endpoint": outcome.endpoint,
        "files": outcome.files,
        "deleted": outcome.deleted,
        "seconds": round(outcome.seconds, 3),
    }
    if merge_details:
        details["merge"] = merge_details
    _record(registry, version, "push", outcome.repo_url, details)
    return PushResult(version=version, outcome=outcome, details=details, log_file=log_file)


@contextmanager
def _push_log(path: Path) -> Iterator[None]:
    """Append this push's log (our messages and the Hub client's requests) to ``path``; the terminal
    keeps hearing only what it heard before."""
    import huggingface_hub.hf_api  # noqa: F401  (installs the client's stderr handler, to be kept quiet)

    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    loggers = [logging.getLogger(name) for name in PUSH_LOGGERS]
    levels = {logger.name: logger.level for logger in loggers}
    quieted = []
    for logger in loggers:
        for terminal in logger.handlers:
            if terminal.level == logging.NOTSET:
                terminal.setLevel(logger.getEffectiveLevel())
                quieted.append(terminal)
        logger.setLevel(logging.DEBUG)
        logger.addHandler(handler)
    try:
        yield
    except Exception as exc:
        logging.getLogger("loraledger.push").error("failed: %s: %s", type(exc).__name__, exc)
        raise
    finally:
        for logger in loggers:
            logger.removeHandler(handler)
            logger.setLevel(levels[logger.name])
        for terminal in quieted:
            terminal.setLevel(logging.NOTSET)
        handler.close()

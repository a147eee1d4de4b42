"""Model names to versions, asked of the registry on every request: aliases move while we serve.

A name is ``NAME`` (its current version), ``NAME@N``, ``NAME@ALIAS``, or the base model's own id.
"""

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from loraledger.errors import InvalidInput, NotFound
from loraledger.server.errors import bad_request, unknown_model

if TYPE_CHECKING:
    from loraledger.ledger import Ledger
    from loraledger.schemas.records import BaseModelRecord, VersionRecord


@dataclass(frozen=True)
class Target:
    """What answers a request: a version's adapter (by digest) on the base, or the bare base."""

    label: str
    """The exact version (``legal@3``) or the base's id: the response's ``model`` field."""
    digest: str | None
    version: "VersionRecord | None"


class Catalog:
    def __init__(self, ledger: "Ledger", base: "BaseModelRecord", names: tuple[str, ...] = ()) -> None:
        self.ledger = ledger
        self.base = base
        self.names = names
        # One registry session at a time: requests resolve from the server's worker threads.
        self._lock = threading.Lock()

    def base_target(self) -> Target:
        return Target(label=self.base.model_id, digest=None, version=None)

    def resolve(self, model: str) -> Target:
        """The version ``model`` names right now; 404 for what is not served, 400 for a version on
        another base."""
        if model == self.base.model_id:
            return self.base_target()
        name = model.partition("@")[0]
        if self.names and name not in self.names:
            raise unknown_model(model, f"this server serves {', '.join(self.names)} only")
        try:
            with self._lock:
                version = self.ledger.version(model)
        except (NotFound, InvalidInput) as exc:
            raise unknown_model(model, str(exc).rstrip(".")) from None
        if not version.base.same_model(self.base):
            raise bad_request(
                f"{version.ref} was trained on {version.base.model_id}, not on the base this server "
                f"holds ({self.base.model_id}): serve it with `adapters serve {name}` on its own base",
                code="model_base_mismatch",
                param="model",
            )
        return Target(label=version.ref, digest=version.artifact_digest, version=version)

    def entries(self) -> list[dict[str, Any]]:
        """``/v1/models``: every servable name with the version and digest it resolves to now."""
        listed = [_entry(self.base.model_id, None, None, self.base.weights_digest)]
        with self._lock:
            names = list(self.names) or [adapter.name for adapter in self.ledger.adapters()]
            versions = [v for name in names for v in self.ledger.versions(name)]
        for version in versions:
            if not version.base.same_model(self.base):
                continue
            ids = [version.ref]
            if version.is_current:
                ids.insert(0, version.name)
            ids += [f"{version.name}@{alias}" for alias in version.aliases if alias != "current"]
            listed += [_entry(model, version.ref, version, version.artifact_digest) for model in ids]
        return listed


def _entry(
    model: str, ref: str | None, version: "VersionRecord | None", digest: str | None
) -> dict[str, Any]:
    return {
        "id": model,
        "object": "model",
        "created": int(version.created_at.timestamp()) if version else 0,
        "owned_by": version.created_by if version else "loraledger",
        "version": ref or model,
        "digest": digest,
    }

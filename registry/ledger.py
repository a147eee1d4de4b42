"""The registry: the rules of numbering, refs, lineage, aliases and artifacts, over a Store.

Everything a command does to the registry goes through one method here. Versions are immutable once
registered; ``current`` and other aliases move, and every move is an event with a reason and an author.
"""

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loraledger.registry.artifacts import ArtifactStore, Problem
from loraledger.registry.digests import canonical_lines_bytes, canonical_lines_digest
from loraledger.registry.engine import is_sqlite, make_engine
from loraledger.registry.errors import Conflict, InvalidInput, NotFound
from loraledger.registry.migrate import ensure_schema
from loraledger.registry.store import SQLStore, Store
from loraledger.schemas.names import Ref, check_alias, check_name
from loraledger.schemas.records import (
    AdapterRecord,
    AliasEvent,
    DatasetRecord,
    DatasetUse,
    EvalResult,
    NewDataset,
    NewEval,
    NewVersion,
    Publication,
    SuiteEntry,
    VersionRecord,
)
from loraledger.schemas.specs import GateSpec


@dataclass
class LineageNode:
    version: VersionRecord
    children: list["LineageNode"] = field(default_factory=list)
    inputs: list["LineageNode"] = field(default_factory=list)


@dataclass(frozen=True)
class VerifyReport:
    checked: list[str]
    problems: list[Problem]


class Registry:
    def __init__(self, store: Store, artifacts: ArtifactStore, *, user: str, host: str) -> None:
        self.store = store
        self.artifacts = artifacts
        self.user = user
        self.host = host

    @classmethod
    def open(
        cls,
        db_url: str,
        artifacts_url: str,
        *,
        user: str,
        host: str,
        storage_options: dict[str, Any] | None = None,
    ) -> "Registry":
        """Open (and for embedded SQLite, create or migrate) a registry."""
        engine = make_engine(db_url)
        ensure_schema(engine, auto_upgrade=is_sqlite(engine))
        return cls(SQLStore(engine), ArtifactStore(artifacts_url, storage_options), user=user, host=host)

    # ---- refs ---------------------------------------------------------------------------------

    def resolve(self, ref: Ref | str) -> VersionRecord:
        ref = Ref.parse(ref) if isinstance(ref, str) else ref
        number = self._number(ref)
        return self.store.version(ref.name, number)

    def _number(self, ref: Ref) -> int:
        versions = [v.number for v in self.store.versions(ref.name)]
        if not versions:
            raise NotFound(self._unknown_adapter(ref.name))
        if ref.version is not None:
            if ref.version not in versions:
                raise NotFound(f"{ref} does not exist: {ref.name} has versions {_ranges(versions)}")
            return ref.version
        aliases = self.store.aliases(ref.name)
        wanted = ref.alias or "current"
        if wanted in aliases:
            return aliases[wanted]
        if wanted == "latest" or (wanted == "current" and not aliases.get("current")):
            return max(versions)
        known = ", ".join(sorted({"current", "latest", *aliases})) or "none"
        raise NotFound(f"{ref} does not exist: {ref.name} has no alias {wanted!r} (aliases: {known})")

    def _unknown_adapter(self, name: str) -> str:
        known = [adapter.name for adapter in self.store.adapters() if adapter.versions]
        if not known:
            return f"no adapter named {name!r}: the registry is empty"
        listed = ", ".join(known[:20]) + (", ..." if len(known) > 20 else "")
        return f"no adapter named {name!r}; known adapters: {listed}"

    # ---- listing ------------------------------------------------------------------------------

    def adapters(self) -> list[AdapterRecord]:
        return self.store.adapters()

    def exists(self, name: str) -> bool:
        return any(adapter.name == name for adapter in self.store.adapters())

    def max_regression(self, name: str) -> float:
        """The adapter's gate threshold (the default for an adapter not registered yet)."""
        for adapter in self.store.adapters():
            if adapter.name == name:
                return adapter.max_regression
        return GateSpec().max_regression

    def set_max_regression(self, name: str, value: float) -> None:
        GateSpec(max_regression=value)  # validates
        self.store.set_max_regression(name, value)

    def versions(self, name: str | None = None) -> list[VersionRecord]:
        if name is not None:
            check_name(name, "adapter name")
            found = self.store.versions(name)
            if not found:
                raise NotFound(self._unknown_adapter(name))
            return found
        return self.store.versions()

    def lineage(self, name: str) -> list[LineageNode]:
        """The training tree of an adapter (roots first), with stack and merge inputs attached."""
        versions = self.versions(name)
        nodes = {v.ref: LineageNode(v) for v in versions}
        roots = []
        for version in versions:
            node = nodes[version.ref]
            node.inputs = [LineageNode(self.resolve(item.ref)) for item in version.inputs]
            parent = nodes.get(version.parent) if version.parent else None
            if parent is None:
                roots.append(node)
            else:
                parent.children.append(node)
        return roots

    def ancestors(self, version: VersionRecord) -> list[VersionRecord]:
        """The chain of parents, nearest first (stack/merge inputs are not ancestors)."""
        chain = []
        seen = {version.ref}
        current = version
        while current.parent and current.parent not in seen:
            current = self.resolve(current.parent)
            seen.add(current.ref)
            chain.append(current)
        return chain

    def history(self, name: str) -> list[AliasEvent]:
        check_name(name, "adapter name")
        return self.store.alias_events(name)

    def datasets(self) -> list[DatasetRecord]:
        return self.store.datasets()

    def dataset_uses(self, name: str | None = None) -> list[DatasetUse]:
        return self.store.dataset_uses(name)

    def diff(self, a: str, b: str) -> dict[str, tuple[Any, Any]]:
        """Fields that differ between two versions: hyperparameters, data, scores (flattened keys)."""
        left, right = _flatten_for_diff(self.resolve(a)), _flatten_for_diff(self.resolve(b))
        return {
            key: (left.get(key), right.get(key))
            for key in sorted(left.keys() | right.keys())
            if left.get(key) != right.get(key)
        }

    # ---- registering --------------------------------------------------------------------------

    def register(self, new: NewVersion, *, promote: bool = True, reason: str | None = None) -> VersionRecord:
        """Record a version whose artifact is already stored; number it; optionally make it current."""
        check_name(new.name, "adapter name")
        if new.parent is not None:
            parent = self.resolve(new.parent)
            if not parent.base.same_model(new.base):
                raise Conflict(
                    f"{new.name}: base model {new.base.model_id} differs from the base of its parent "
                    f"{parent.ref} ({parent.base.model_id})"
                )
        for item, _weight in new.inputs:
            self.resolve(item)
        self.artifacts.manifest(new.artifact_digest)  # refuses a missing or corrupt artifact
        number = self.store.register(
            new,
            promote=promote,
            reason=reason or ("registered" if promote else None),
            who=self.user,
            host=self.host,
        )
        return self.store.version(new.name, number)

    def put_artifact(self, folder: Path) -> str:
        return self.artifacts.put_folder(folder)

    def checkout(self, ref: Ref | str, dest: Path) -> Path:
        """Write a version's verified files into ``dest``."""
        version = self.resolve(ref)
        return self.artifacts.get_folder(version.artifact_digest, dest)

    # ---- datasets -----------------------------------------------------------------------------

    def store_dataset(
        self, canonical_lines: list[str], *, format: str, source: str | None, tokens: int | None = None
    ) -> NewDataset:
        """Keep a canonical copy of a dataset (for replay and audits); return its registry description."""
        digest = canonical_lines_digest(canonical_lines)
        blob = self.artifacts.put_bytes(canonical_lines_bytes(canonical_lines))
        assert blob == digest
        return NewDataset(
            digest=digest, format=format, rows=len(canonical_lines), tokens=tokens, source=source, blob=blob
        )

    def dataset_rows(self, digest: str) -> list[dict[str, Any]]:
        """The records of a dataset, from the canonical copy kept in the artifact store.

        The copy is a blob named by the dataset digest itself, so it can be read before the dataset is
        registered (an update scores its eval split before registering the version)."""
        record = self.store.dataset(digest)
        blob = record.blob if record is not None else digest
        if blob is None:
            raise NotFound(
                f"the registry keeps no copy of dataset {digest} (source: {record and record.source})"
            )
        try:
            data = self.artifacts.read_bytes(blob)
        except NotFound:
            raise NotFound(
                f"no copy of dataset {digest} in the artifact store {self.artifacts.url}"
            ) from None
        return [json.loads(line) for line in data.decode().splitlines()]

    def lineage_datasets(self, version: VersionRecord, role: str = "train") -> list[DatasetUse]:
        """Datasets seen in ``role`` by a version and its ancestors, nearest first."""
        return [use for v in [version, *self.ancestors(version)] for use in v.datasets if use.role == role]

    # ---- aliases ------------------------------------------------------------------------------

    def set_alias(self, ref: str, alias: str, *, reason: str | None = None) -> AliasEvent:
        check_alias(alias)
        version = self.resolve(ref)
        return self.store.move_alias(
            version.name, alias, version.number, reason=reason, who=self.user, expect=None
        )

    def remove_alias(self, name: str, alias: str, *, reason: str | None = None) -> AliasEvent:
        check_alias(alias)
        if alias not in self.store.aliases(name):
            raise NotFound(f"{name} has no alias {alias!r}")
        return self.store.move_alias(name, alias, None, reason=reason, who=self.user, expect=None)

    def promote(self, ref: str, *, reason: str | None = None) -> AliasEvent:
        version = self.resolve(ref)
        before = self.store.aliases(version.name).get("current")
        return self.store.move_alias(
            version.name,
            "current",
            version.number,
            reason=reason or "promoted by hand",
            who=self.user,
            expect=before,
        )

    def rollback(self, name: str, *, to: str | None = None, reason: str | None = None) -> AliasEvent:
        """Move ``current`` back: to ``to`` when given, else to the parent of the current version."""
        current = self.resolve(Ref(name=check_name(name, "adapter name")))
        if to is None:
            if current.parent is None:
                raise Conflict(f"{current.ref} has no parent to roll back to; use --to REF")
            target = self.resolve(current.parent)
        else:
            target = self.resolve(to)
        if target.name != name:
            raise InvalidInput(f"cannot roll {name} back to {target.ref}: it belongs to another adapter")
        if target.number == current.number:
            raise Conflict(f"{name}@current is already {target.ref}")
        return self.store.move_alias(
            name,
            "current",
            target.number,
            reason=reason or f"rollback from {current.ref}",
            who=self.user,
            expect=current.number if "current" in current.aliases else None,
        )

    # ---- evals and suites ---------------------------------------------------------------------

    def record_evals(self, ref: str, evals: Sequence[NewEval]) -> None:
        version = self.resolve(ref)
        self.store.add_evals(version.name, version.number, evals)

    def eval_results(self, name: str) -> list[EvalResult]:
        return self.store.eval_results(name)

    def suite(self, name: str) -> list[SuiteEntry]:
        return self.store.suite(name)

    def add_to_suite(
        self, name: str, dataset: NewDataset, *, label: str, role: str, version: int | None = None
    ) -> SuiteEntry:
        check_name(name, "adapter name")
        return self.store.add_suite_entry(name, dataset, label=label, role=role, version=version)

    def record_publication(self, ref: str, publication: Publication) -> None:
        version = self.resolve(ref)
        self.store.add_publication(version.name, version.number, publication)

    # ---- integrity ----------------------------------------------------------------------------

    def verify(self, ref: str | None = None) -> VerifyReport:
        targets: Iterable[str]
        if ref is not None:
            targets = [self.resolve(ref).artifact_digest]
        else:
            targets = sorted(self.store.referenced_blobs())
        checked, problems = [], []
        for digest in targets:
            checked.append(digest)
            problems += self.artifacts.verify(digest)
        return VerifyReport(checked=checked, problems=problems)

    def garbage(self) -> tuple[list[str], list[str]]:
        return self.artifacts.unreferenced(self.store.referenced_blobs())

    def collect_garbage(self) -> tuple[list[str], list[str]]:
        manifests, blobs = self.garbage()
        for digest in manifests:
            self.artifacts.delete(digest, manifest=True)
        for digest in blobs:
            self.artifacts.delete(digest, manifest=False)
        return manifests, blobs


def _ranges(numbers: list[int]) -> str:
    numbers = sorted(numbers)
    return (
        f"{numbers[0]}..{numbers[-1]}"
        if numbers == list(range(numbers[0], numbers[-1] + 1))
        else str(numbers)
    )


def _flatten_for_diff(version: VersionRecord) -> dict[str, Any]:
    flat: dict[str, Any] = {
        "kind": version.kind,
        "parent": version.parent,
        "base": version.base.model_id,
        "base fingerprint": version.base.fingerprint,
        "seed": version.seed,
        "train tokens": version.train_tokens,
        "final loss": version.final_loss,
        "artifact": version.artifact_digest,
    }
    flat |= {f"lora.{key}": value for key, value in version.lora.items()}
    flat |= {f"training.{key}": value for key, value in version.training.items()}
    flat |= {f"library.{key}": value for key, value in version.libraries.items()}
    for use in version.datasets:
        flat[f"data.{use.role}.{use.label or use.dataset.digest[:19]}"] = use.dataset.digest
    for result in version.evals:
        flat[f"eval.{result.label or result.dataset_digest[:19]}.{result.metric}"] = round(result.value, 6)
    return flat

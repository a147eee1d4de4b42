"""The registry: the rules of numbering, refs, lineage, aliases and artifacts, over a Store.

Everything a command does to the registry goes through one method here. Versions are immutable once
registered; ``current`` and other aliases move, and every move is an event with a reason and an author.
"""

import dataclasses
import difflib
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loraledger.registry import integrity
from loraledger.registry.artifacts import ArtifactStore
from loraledger.registry.digests import canonical_lines_bytes, canonical_lines_digest
from loraledger.registry.engine import is_sqlite, make_engine
from loraledger.registry.errors import Conflict, Corrupt, InvalidInput, NotFound
from loraledger.registry.forgetting import ScoreMatrix, from_records
from loraledger.registry.integrity import GarbageReport, VerifyReport
from loraledger.registry.migrate import ensure_schema
from loraledger.registry.store import SQLStore, Store
from loraledger.schemas.names import RESERVED_ALIASES, Ref, check_alias, check_name
from loraledger.schemas.records import (
    AdapterRecord,
    AliasEvent,
    BaseModelRecord,
    DatasetRecord,
    DatasetUse,
    EvalResult,
    NewDataset,
    NewEval,
    NewVersion,
    Publication,
    SuiteEntry,
    VersionRecord,
    VersionSummary,
)


@dataclass
class LineageNode:
    version: VersionSummary
    children: list["LineageNode"] = field(default_factory=list)
    inputs: list["LineageNode"] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The subtree as nested dicts (built without recursion: lineages can be thousands deep)."""
        root: dict[str, Any] = {"version": self.version.to_dict(), "children": [], "inputs": []}
        pending: list[tuple[LineageNode, dict[str, Any]]] = [(self, root)]
        while pending:
            node, into = pending.pop()
            for key, nodes in (("children", node.children), ("inputs", node.inputs)):
                for child in nodes:
                    entry: dict[str, Any] = {"version": child.version.to_dict(), "children": [], "inputs": []}
                    into[key].append(entry)
                    pending.append((child, entry))
        return root


class Registry:
    def __init__(
        self, store: Store, artifacts: ArtifactStore | Callable[[], ArtifactStore], *, user: str, host: str
    ) -> None:
        self.store = store
        self._artifacts = artifacts
        self.user = user
        self.host = host

    @property
    def artifacts(self) -> ArtifactStore:
        """The artifact store, opened on first use: listing and showing versions never need it (nor
        fsspec, whose import would slow every `adapters list`)."""
        if not isinstance(self._artifacts, ArtifactStore):
            self._artifacts = self._artifacts()
        return self._artifacts

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
        return cls(
            SQLStore(engine),
            lambda: ArtifactStore(artifacts_url, storage_options),
            user=user,
            host=host,
        )

    # ---- refs ---------------------------------------------------------------------------------

    def resolve(self, ref: Ref | str) -> VersionRecord:
        """The version a ref names: ``name`` or ``name@current`` (the current version), ``name@3`` or
        ``name@v3``, ``name@latest`` (the highest number), ``name@ALIAS``. A ref naming nothing is
        refused with what does exist (the adapter's versions and aliases, or the known adapters)."""
        ref = Ref.parse(ref) if isinstance(ref, str) else ref
        number = self._number(ref)
        try:
            return self.store.version(ref.name, number)
        except NotFound:
            raise NotFound(self._missing(ref)) from None

    def _number(self, ref: Ref) -> int:
        # Two small queries at most: a ref is resolved without loading the adapter's versions.
        if ref.version is not None:
            return ref.version  # store.version checks it exists
        aliases = self.store.aliases(ref.name)
        wanted = ref.alias or "current"
        if wanted in aliases:
            return aliases[wanted]
        numbers = self.store.numbers(ref.name)
        # An adapter whose versions were all registered without promotion has no current yet.
        if numbers and wanted in ("current", "latest"):
            return numbers[-1]
        raise NotFound(self._missing(ref, numbers, aliases))

    def _missing(
        self, ref: Ref, numbers: list[int] | None = None, aliases: dict[str, int] | None = None
    ) -> str:
        """Why ``ref`` names nothing, and what exists instead."""
        numbers = self.store.numbers(ref.name) if numbers is None else numbers
        if not numbers:
            return self._unknown_adapter(ref.name)
        aliases = self.store.aliases(ref.name) if aliases is None else aliases
        pointers = {"latest": numbers[-1], **aliases}
        shown = ", ".join(f"{alias} ({ref.name}@{pointers[alias]})" for alias in sorted(pointers))
        inventory = f"{ref.name} has versions {_ranges(numbers)} and aliases {shown}"
        if ref.version is not None:
            return f"{ref} does not exist: {inventory}"
        return f"{ref} does not exist: {ref.name} has no alias {ref.alias!r}; {inventory}"

    def _unknown_adapter(self, name: str) -> str:
        known = [adapter.name for adapter in self.store.adapters() if adapter.versions]
        if not known:
            return f"no adapter named {name!r}: the registry is empty"
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
        hint = f" (did you mean {close[0]}?)" if close else ""
        listed = ", ".join(known[:20]) + (f", ... ({len(known)} in all)" if len(known) > 20 else "")
        return f"no adapter named {name!r}{hint}; known adapters: {listed}"

    # ---- listing ------------------------------------------------------------------------------

    def adapters(self) -> list[AdapterRecord]:
        return self.store.adapters()

    def exists(self, name: str) -> bool:
        return any(adapter.name == name for adapter in self.store.adapters())

    def has_versions(self, name: str) -> bool:
        """Whether NAME has a version yet (an adapter may exist with only a suite before version 1)."""
        return bool(self.store.numbers(name))

    def current_number(self, name: str) -> int | None:
        """The number NAME's ``current`` alias points at now (None before any version is current)."""
        return self.store.aliases(name).get("current")

    def max_regression(self, name: str) -> float:
        """The adapter's gate threshold (the default for an adapter not registered yet)."""
        for adapter in self.store.adapters():
            if adapter.name == name:
                return adapter.max_regression
        from loraledger.schemas.specs import GateSpec  # specs are not needed to list or show

        return GateSpec().max_regression

    def set_max_regression(self, name: str, value: float) -> None:
        from loraledger.schemas.specs import GateSpec

        GateSpec(max_regression=value)  # validates
        self.store.set_max_regression(name, value)

    def summaries(self, name: str | None = None) -> list[VersionSummary]:
        """What a listing shows of each version (of ``name``, or of every adapter): cheap at any size."""
        if name is not None:
            check_name(name, "adapter name")
            found = self.store.summaries(name)
            if not found:
                raise NotFound(self._unknown_adapter(name))
            return found
        return self.store.summaries()

    def versions(self, name: str | None = None) -> list[VersionRecord]:
        if name is not None:
            check_name(name, "adapter name")
            found = self.store.versions(name)
            if not found:
                raise NotFound(self._unknown_adapter(name))
            return found
        return self.store.versions()

    def lineage(self, name: str) -> list[LineageNode]:
        """The training tree of an adapter (roots first), with stack and merge inputs attached.

        Built from summaries (one listing per adapter involved), so that lineages of thousands of
        versions load in a fraction of a second."""
        versions = self.summaries(name)
        listed = {name: {v.ref: v for v in versions}}

        def summary(ref: str) -> VersionSummary:
            adapter = ref.rpartition("@")[0]
            if adapter not in listed:
                listed[adapter] = {v.ref: v for v in self.store.summaries(adapter)}
            if ref not in listed[adapter]:
                raise NotFound(self._missing(Ref.parse(ref)))
            return listed[adapter][ref]

        nodes = {v.ref: LineageNode(v) for v in versions}
        roots = []
        for version in versions:
            node = nodes[version.ref]
            node.inputs = [LineageNode(summary(item.ref)) for item in version.inputs]
            parent = nodes.get(version.parent) if version.parent else None
            if parent is None:
                roots.append(node)
            else:
                parent.children.append(node)
        return roots

    def ancestors(self, version: VersionRecord, *, full: bool = True) -> list[VersionRecord]:
        """The chain of parents, nearest first (stack/merge inputs are not ancestors).

        ``full=False`` walks the chain over one listing of the adapter instead of one lookup per
        ancestor (fast on long chains); its records carry no evals or publications, as in ``versions``.
        """
        listed = {} if full else {v.ref: v for v in self.store.versions(version.name)}
        chain = []
        seen = {version.ref}
        current = version
        while current.parent and current.parent not in seen:
            current = listed.get(current.parent) or self.resolve(current.parent)
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

    def diff(self, a: str, b: str, *, everything: bool = False) -> dict[str, tuple[Any, Any]]:
        """Two versions' hyperparameters, data (digests per role) and scores under flattened keys
        (``training.learning_rate``, ``data.train``, ``eval.LABEL.nll [SETTING]``): the fields that differ, or
        all of them with ``everything``."""
        left, right = _flatten_for_diff(self.resolve(a)), _flatten_for_diff(self.resolve(b))
        return {
            key: (left.get(key), right.get(key))
            for key in sorted(left.keys() | right.keys())
            if everything or left.get(key) != right.get(key)
        }

    # ---- registering --------------------------------------------------------------------------

    def register(
        self,
        new: NewVersion,
        *,
        promote: bool = True,
        reason: str | None = None,
        only_if_current: tuple[int | None] | None = None,
    ) -> VersionRecord:
        """Record a version whose artifact is already stored; number it; optionally make it current
        (with ``only_if_current=(n,)``: only if current is still version n, or unset for ``(None,)``)."""
        check_name(new.name, "adapter name")
        if new.parent is not None:
            parent = self.resolve(new.parent)
            if not parent.base.same_model(new.base):
                raise Conflict(
                    f"{new.name}: base model {new.base.model_id} differs from the base of its parent "
                    f"{parent.ref} ({parent.base.model_id})"
                )
        for item, _weight in new.inputs:
            source = self.resolve(item)
            if not source.base.same_model(new.base):
                raise Conflict(
                    f"{new.name}: input {source.ref} was trained on {_base_words(source.base)}, not on "
                    f"{_base_words(new.base)}: combined adapters must share one base"
                )
        self._check_stored(new)
        number = self.store.register(
            new,
            promote=promote,
            reason=reason or ("registered" if promote else None),
            who=self.user,
            host=self.host,
            only_if_current=only_if_current,
        )
        return self.store.version(new.name, number)

    def check_base(self, name: str, base: BaseModelRecord) -> None:
        """Refuse ``base`` for a version of ``name`` that does not continue another (a stack, an import)
        when the adapter's versions were trained on another base: one name, one base."""
        check_name(name, "adapter name")
        for version in self.store.versions(name):
            if not version.base.same_model(base):
                raise Conflict(
                    f"{version.ref} was trained on {_base_words(version.base)}, not on {_base_words(base)}: "
                    "use another adapter name"
                )

    def put_artifact(self, folder: Path) -> str:
        return self.artifacts.put_folder(folder)

    def _check_stored(self, new: NewVersion) -> None:
        """Refuse to register a version whose artifact or dataset copies are not (all) in the store."""
        files = self.artifacts.manifest(new.artifact_digest)  # refuses a missing or corrupt manifest
        missing = [path for path, blob in files.items() if not self.artifacts.has_blob(blob)]
        datasets = [use.dataset for use in new.datasets] + [result.dataset for result in new.evals]
        missing += [f"dataset {d.digest}" for d in datasets if d.blob and not self.artifacts.has_blob(d.blob)]
        if missing:
            raise NotFound(
                f"cannot register {new.name}: {', '.join(missing)} missing from the artifact store "
                f"{self.artifacts.url} (collected by `adapters gc`?): run the command again"
            )

    def checkout(self, ref: Ref | str, dest: Path, *, allow_pickle: bool = False) -> Path:
        """Write a version's verified files into ``dest``; a missing or corrupt file is refused."""
        version = self.resolve(ref)
        try:
            return self.artifacts.get_folder(version.artifact_digest, dest, allow_pickle=allow_pickle)
        except (Corrupt, NotFound, InvalidInput) as exc:
            raise type(exc)(f"{version.ref}: {exc} (see `adapters verify {version.ref}`)") from None

    # ---- datasets -----------------------------------------------------------------------------

    def store_dataset(
        self, canonical_lines: list[str], *, format: str, source: str | None, tokens: int | None = None
    ) -> NewDataset:
        """Keep a canonical copy of a dataset (for replay and audits); return its registry description."""
        digest = canonical_lines_digest(canonical_lines)
        blob = self.artifacts.put_bytes(canonical_lines_bytes(canonical_lines), private=True)
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
        chain = [version, *self.ancestors(version, full=False)]
        return [use for v in chain for use in v.datasets if use.role == role]

    def already_trained(self, version: VersionRecord, digests: Iterable[str]) -> dict[str, str]:
        """Which of ``digests`` ``version`` or one of its ancestors was trained on: digest -> the ref
        of the nearest version that was. Training a continuation on them again is worth a warning."""
        wanted = set(digests)
        found: dict[str, str] = {}
        for use in self.lineage_datasets(version):
            if use.dataset.digest in wanted:
                found.setdefault(use.dataset.digest, use.ref)
        return found

    # ---- aliases ------------------------------------------------------------------------------

    def set_alias(self, ref: str, alias: str, *, reason: str | None = None) -> AliasEvent:
        _check_movable(alias)
        version = self.resolve(ref)
        return self.store.move_alias(
            version.name, alias, version.number, reason=reason, who=self.user, expect=None
        )

    def remove_alias(self, name: str, alias: str, *, reason: str | None = None) -> AliasEvent:
        _check_movable(alias)
        aliases = self.store.aliases(check_name(name, "adapter name"))
        if alias not in aliases:
            if not self.store.numbers(name):
                raise NotFound(self._unknown_adapter(name))
            raise NotFound(f"{name} has no alias {alias!r} (aliases: {', '.join(sorted(aliases))})")
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

    def base_evals(self, base: BaseModelRecord) -> list[EvalResult]:
        """Scores of a bare base model: computed once per dataset and shared by every adapter on it."""
        return self.store.base_evals(base)

    def record_base_evals(self, base: BaseModelRecord, evals: Sequence[NewEval]) -> None:
        self.store.add_base_evals(base, evals)

    def score_matrix(self, name: str, *, setting: str | None = None) -> ScoreMatrix:
        """NAME's versions x eval sets in mean NLL, with the forgetting metrics (see forgetting.py), in
        one scoring setting: ``setting``, or that of the most recent score."""
        versions = self.versions(name)
        bases = {version.base.fingerprint: version.base for version in versions}
        return from_records(
            versions,
            self.suite(name),
            self.eval_results(name),
            {key: self.store.base_evals(base) for key, base in bases.items()},
            setting=setting,
        )

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

    def check_writable(self) -> None:
        """Raise StoreUnavailable now if the database refuses writes (read-only file or folder, a
        read-only role), before a caller spends a training run on something it cannot record."""
        self.store.check_writable()

    def verify(self, ref: str | None = None) -> VerifyReport:
        """Re-hash the artifact of REF (and the dataset copies it used), or of everything registered."""
        if ref is not None:
            version = self.resolve(ref)
            return integrity.verify(self.artifacts, [version], [use.dataset for use in version.datasets])
        versions = self.store.versions()
        report = integrity.verify(self.artifacts, versions, self.store.datasets(), everything=True)
        moves = {adapter.name: self.store.alias_events(adapter.name) for adapter in self.store.adapters()}
        missing = integrity.missing_versions(versions, moves)
        return dataclasses.replace(report, problems=[*missing, *report.problems]) if missing else report

    def garbage(self, *, min_age_seconds: float = 0.0) -> GarbageReport:
        """Stored objects no version or dataset refers to (leftovers of crashed or failed runs)."""
        return integrity.find_garbage(
            self.artifacts, self.store.versions(), self.store.datasets(), min_age_seconds=min_age_seconds
        )

    def collect_garbage(self, *, min_age_seconds: float = 0.0) -> GarbageReport:
        return integrity.collect(self.artifacts, self.garbage(min_age_seconds=min_age_seconds))


def _check_movable(alias: str) -> None:
    """Aliases a user may set or remove: not ``current`` (moved by promote and rollback, which guard
    against concurrent moves and record why) and not the computed ``latest`` or reserved ``base``."""
    check_alias(alias)
    if alias == "current":
        raise InvalidInput(
            "current is moved with `adapters promote REF` or `adapters rollback NAME [--to REF]`"
        )
    if alias in RESERVED_ALIASES:
        raise InvalidInput(f"{alias!r} is a reserved alias name: choose another (e.g. champion, staging)")


def _base_words(base: BaseModelRecord) -> str:
    """A base in an error message: its id and enough of its fingerprint to tell two apart."""
    identity = base.weights_digest or base.revision or base.config_digest
    return f"{base.model_id} ({identity.split(':')[-1][:12]})"


def _ranges(numbers: list[int]) -> str:
    """``1..40, 42, 44..50``: version numbers as runs."""
    runs: list[list[int]] = []
    for number in sorted(numbers):
        if runs and number == runs[-1][-1] + 1:
            runs[-1].append(number)
        else:
            runs.append([number])
    return ", ".join(str(run[0]) if len(run) == 1 else f"{run[0]}..{run[-1]}" for run in runs)


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
    for use in version.datasets:  # one entry per role: the digests of its sets, replay with its share
        entry = use.dataset.digest + (f" ×{use.rows}" if use.role == "replay" else "")
        flat.setdefault(f"data.{use.role}", []).append(entry)
    for result in version.evals:  # scores of different settings are different fields: not comparable
        key = f"eval.{result.label or result.dataset_digest[:19]}.{result.metric} [{result.setting}]"
        flat[key] = round(result.value, 6)
    return flat

"""Integrity of the artifact store against the registry: ``verify`` re-derives every stored digest,
``find_garbage`` lists what nothing refers to.

Blobs are shared (an unchanged config file, a dataset used by many versions), so each distinct blob is
hashed once and a problem is reported with every version or dataset it affects.
"""

import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Literal

from loraledger.registry.artifacts import ArtifactStore, Problem, StoredObject
from loraledger.schemas.records import AliasEvent, DatasetRecord, VersionRecord


@dataclass(frozen=True)
class Finding:
    """One missing or corrupt object and what it breaks."""

    kind: Literal["missing", "corrupt"]
    object: Literal["manifest", "blob", "version"]
    digest: str
    affects: list[str]

    def line(self) -> str:
        more = len(self.affects) - 5
        shown = ", ".join(self.affects[:5]) + (f" (+{more} more)" if more > 0 else "")
        return f"{self.kind}: {self.object} {self.digest} ({shown})"


@dataclass(frozen=True)
class VerifyReport:
    artifacts: int
    blobs: int
    datasets: int
    bytes: int
    seconds: float
    problems: list[Finding] = field(default_factory=list)
    # Objects nothing registered refers to (what crashed or refused runs left; ``adapters gc`` lists
    # and removes them). Harmless, so not a problem; None when only some versions were checked.
    unreferenced: list[StoredObject] | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def corrupt(self) -> int:
        return sum(1 for p in self.problems if p.kind == "corrupt")

    @property
    def missing(self) -> int:
        return sum(1 for p in self.problems if p.kind == "missing")


def verify(
    artifacts: ArtifactStore,
    versions: Iterable[VersionRecord],
    datasets: Iterable[DatasetRecord],
    *,
    everything: bool = False,
) -> VerifyReport:
    """Check the manifests of ``versions``, every blob they name, and the copies of ``datasets``;
    ``everything`` (all that is registered was passed) also lists the objects nothing refers to."""
    started = time.perf_counter()
    datasets = list(datasets)
    manifest_users: dict[str, list[str]] = defaultdict(list)
    for version in versions:
        manifest_users[version.artifact_digest].append(version.ref)
    blob_users: dict[str, list[str]] = defaultdict(list)
    findings: list[Finding] = []
    for digest, refs in sorted(manifest_users.items()):
        files, problem = artifacts.check_manifest(digest)
        if problem is not None:
            findings.append(_finding(problem, [f"artifact of {ref}" for ref in refs]))
        for path, blob in files.items():
            blob_users[blob] += [f"{ref} {path}" for ref in refs]
    dataset_count = 0
    for dataset in datasets:
        if dataset.blob is None:
            continue  # the registry kept only the digest and source of this one
        dataset_count += 1
        blob_users[dataset.blob].append(f"dataset {dataset.digest[:19]}… ({dataset.source or 'no source'})")
    size = 0
    for blob, users in sorted(blob_users.items()):
        read, problem = artifacts.check_blob(blob)
        size += read
        if problem is not None:
            findings.append(_finding(problem, sorted(set(users))))
    unreferenced = None
    if everything:  # the manifests were read above: blob_users holds every blob they and datasets name
        damaged = any(finding.object == "manifest" for finding in findings)
        unreferenced = artifacts.garbage_among(set(manifest_users), set(blob_users), damaged=damaged)
    return VerifyReport(
        artifacts=len(manifest_users),
        blobs=len(blob_users),
        datasets=dataset_count,
        bytes=size,
        seconds=time.perf_counter() - started,
        problems=findings,
        unreferenced=unreferenced,
    )


def missing_versions(versions: Iterable[VersionRecord], moves: dict[str, list[AliasEvent]]) -> list[Finding]:
    """Versions the registry itself says existed but holds no row for: a row deleted out of band (the
    sqlite3 shell enforces no foreign keys and no triggers of ours). Numbers are given without gaps,
    so a gap is a deleted version; an alias that once pointed past the last number is another."""
    numbers: dict[str, set[int]] = defaultdict(set)
    for version in versions:
        numbers[version.name].add(version.number)
    evidence: dict[str, list[str]] = defaultdict(list)
    for name, present in numbers.items():
        for number in range(1, max(present)):
            if number not in present:
                below = max((n for n in present if n < number), default=None)
                above = min(n for n in present if n > number)
                around = f"{name}@{below} and {name}@{above}" if below else f"{name}@{above}"
                evidence[f"{name}@{number}"].append(f"numbered before {around}")
    for name, events in moves.items():
        present = numbers.get(name, set())
        for event in events:
            for moved in (event.from_version, event.to_version):
                if moved is not None and moved not in present:
                    evidence[f"{name}@{moved}"].append(f"the alias history moves {event.alias} to or from it")
    return [
        Finding(kind="missing", object="version", digest=ref, affects=sorted(set(why)))
        for ref, why in sorted(evidence.items())
    ]


def _finding(problem: Problem, affects: list[str]) -> Finding:
    return Finding(kind=problem.kind, object=problem.object, digest=problem.digest, affects=affects)


@dataclass(frozen=True)
class GarbageReport:
    """Unreferenced objects: ``collectable`` ones and ``spared`` ones (younger than the minimum age,
    so possibly written by a run that has not registered yet)."""

    collectable: list[StoredObject]
    spared: list[StoredObject]
    damaged_manifests: int
    min_age_seconds: float

    @property
    def bytes(self) -> int:
        return sum(item.size for item in self.collectable)


def find_garbage(
    artifacts: ArtifactStore,
    versions: Iterable[VersionRecord],
    datasets: Iterable[DatasetRecord],
    *,
    min_age_seconds: float,
    now: datetime | None = None,
) -> GarbageReport:
    live_artifacts = {version.artifact_digest for version in versions}
    live_blobs = {dataset.blob for dataset in datasets if dataset.blob}
    unreferenced, damaged = artifacts.unreferenced(live_artifacts, live_blobs)
    moment = now or datetime.now(UTC)
    collectable: list[StoredObject] = []
    spared: list[StoredObject] = []
    for item in unreferenced:
        age = (moment - item.modified).total_seconds() if item.modified else float("inf")
        (collectable if age >= min_age_seconds else spared).append(item)
    return GarbageReport(
        collectable=collectable, spared=spared, damaged_manifests=damaged, min_age_seconds=min_age_seconds
    )


def collect(artifacts: ArtifactStore, report: GarbageReport) -> GarbageReport:
    """Delete the collectable objects, manifests first, so that no manifest ever names a deleted blob.

    Each object's age is checked again just before it goes: one stored again since the listing (by a
    run about to register it) is spared. Returns the report of what was actually deleted."""
    order = {"manifest": 0, "temporary": 1, "blob": 2}
    cutoff = datetime.now(UTC) - timedelta(seconds=report.min_age_seconds)
    deleted: list[StoredObject] = []
    spared = list(report.spared)
    for item in sorted(report.collectable, key=lambda item: order[item.kind]):
        (deleted if artifacts.delete(item, unless_modified_after=cutoff) else spared).append(item)
    return replace(report, collectable=deleted, spared=spared)

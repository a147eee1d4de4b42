"""Results of the ``Ledger`` reads that combine several records: what a client renders in one go."""

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from loraledger.registry.forgetting import ScoreMatrix
from loraledger.schemas.records import SuiteEntry


@dataclass(frozen=True)
class VersionDiff:
    """Two versions' records side by side: ``changes[field] = (value in left, value in right)``."""

    left: str  # the ref the first argument resolved to (``legal@3``)
    right: str
    changes: dict[str, tuple[Any, Any]]

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return {key: {self.left: a, self.right: b} for key, (a, b) in self.changes.items()}


@dataclass(frozen=True)
class Forgetting:
    """NAME's score matrix in one scoring setting, with what is needed to read it: the gate's
    threshold and the versions that were ever current (the others were held back)."""

    name: str
    matrix: ScoreMatrix
    threshold: float
    ever_current: set[int] = field(default_factory=set)


@dataclass(frozen=True)
class Suite:
    """NAME's eval suite (iterate it for the entries), the gate's threshold over it, and the scoring
    setting of NAME's most recent scores (None before any)."""

    name: str
    entries: list[SuiteEntry]
    threshold: float
    setting: str | None = None

    def __iter__(self) -> Iterator[SuiteEntry]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)


@dataclass(frozen=True)
class SchemaStatus:
    """Where the registry database is (password hidden) and its schema revision against the code's."""

    url: str
    revision: str | None  # None: an empty database
    head: str

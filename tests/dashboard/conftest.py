"""A small registry with the cases a page must show (a held-back version, a base row, a stack, an alias
with a reason) and the strings a page must escape, seeded through the real Registry (no training:
the dashboard reads records, whatever made them)."""

from dataclasses import dataclass

import pytest
from support.seeding import BASE, seed_version

NOTE = "<script>alert('note')</script>"
REASON = "<img src=x onerror=alert(1)> & co"
GENERAL, LEGAL = "general <b>text</b>", "legal-1"


@dataclass(frozen=True)
class Seeded:
    name: str
    scores: dict[int, dict[str, float]]  # version -> label -> NLL, as recorded
    base_scores: dict[str, float]


SCORES = {
    1: {GENERAL: 2.0, LEGAL: 1.8},
    2: {GENERAL: 2.02, LEGAL: 1.5},
    3: {GENERAL: 2.4, LEGAL: 1.3},  # 18.8% worse on general text than v2: the gate holds it back
}
BASE_SCORES = {GENERAL: 1.95, LEGAL: 2.1}
SETTING = "fp32 w512/s256"


def _dataset(label: str):  # type: ignore[no-untyped-def]
    from loraledger.registry.digests import bytes_digest
    from loraledger.schemas.records import NewDataset

    return NewDataset(digest=bytes_digest(label.encode()), format="jsonl", rows=10, source=f"{label}.jsonl")


@pytest.fixture
def seeded(home) -> Seeded:  # type: ignore[no-untyped-def]
    import loraledger
    from loraledger.schemas.records import NewEval

    registry = loraledger.open().registry
    registry.add_to_suite("legal", _dataset(GENERAL), label=GENERAL, role="retention")
    parent = None
    for number, scores in SCORES.items():
        version = seed_version(
            registry,
            "legal",
            weights=f"v{number}".encode(),
            parent=parent,
            promote=number < 3,
            note=NOTE if number == 3 else None,  # what a user wrote: pages must show it as text
        )
        registry.record_evals(
            version.ref,
            [NewEval(dataset=_dataset(label), metric="nll", value=value, setting=SETTING, label=label)
             for label, value in scores.items()],
        )  # fmt: skip
        if number == 1:  # v1's update came with its eval split
            registry.add_to_suite("legal", _dataset(LEGAL), label=LEGAL, role="update", version=1)
        parent = version.ref
    registry.record_base_evals(
        BASE,
        [NewEval(dataset=_dataset(label), metric="nll", value=value, setting=SETTING, label=label)
         for label, value in BASE_SCORES.items()],
    )  # fmt: skip
    registry.set_alias("legal@1", "champion", reason=REASON)
    return Seeded("legal", SCORES, BASE_SCORES)

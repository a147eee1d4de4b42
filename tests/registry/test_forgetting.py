"""Forgetting metrics on hand-made scores whose answers are worked out by hand.

Lineage: 1 -> 2 -> 3, and 4 branching from 1. Sets: G (general retention), U1/U2/U3 (eval splits of
the updates that versions 1/2/3 learned). NLL, lower is better.
"""

from datetime import UTC, datetime, timedelta

import pytest

from loraledger.registry.forgetting import (
    MatrixColumn,
    VersionScores,
    from_records,
    latest_scores,
    lineage,
    newest_setting,
    regressions,
    score_matrix,
    settings_by_recency,
)
from loraledger.schemas.records import (
    UNRECORDED,
    BaseModelRecord,
    DatasetRecord,
    DatasetUse,
    EvalResult,
    SuiteEntry,
    VersionRecord,
)

SETS = [
    MatrixColumn("G", "general", "retention"),
    MatrixColumn("U1", "update 1", "update", learned_by=1),
    MatrixColumn("U2", "update 2", "update", learned_by=2),
    MatrixColumn("U3", "update 3", "update", learned_by=3),
]
BASE = {"G": 3.0, "U1": 2.8, "U2": 3.1, "U3": 3.0}
VERSIONS = [
    VersionScores(1, None, {"G": 3.3, "U1": 2.0}),
    VersionScores(2, 1, {"G": 3.6, "U1": 1.8, "U2": 2.5}),
    VersionScores(3, 2, {"G": 3.9, "U1": 2.3, "U2": 2.9, "U3": 1.8}),
    VersionScores(4, 1, {"G": 3.4, "U1": 1.9, "U2": 3.0}),
]


@pytest.fixture
def matrix():  # type: ignore[no-untyped-def]
    return score_matrix(VERSIONS, SETS, {"base": BASE})


def test_lineage_runs_root_first_and_follows_branches() -> None:
    by_number = {v.number: v for v in VERSIONS}
    assert lineage(3, by_number) == [1, 2, 3]
    assert lineage(4, by_number) == [1, 4]
    assert lineage(1, by_number) == [1]


def test_cells_hold_change_against_parent_and_base(matrix) -> None:  # type: ignore[no-untyped-def]
    cell = matrix.row(3).cells["G"]
    assert cell.nll == 3.9
    assert cell.vs_parent.absolute == pytest.approx(0.3)
    assert cell.vs_parent.relative == pytest.approx(0.3 / 3.6)
    assert cell.vs_base.absolute == pytest.approx(0.9)
    assert cell.vs_base.relative == pytest.approx(0.3)
    assert matrix.row(4).cells["U1"].vs_parent.absolute == pytest.approx(-0.1)  # parent is 1, not 3
    assert matrix.row(1).cells["G"].vs_parent is None  # a first version has no parent
    assert matrix.row(2).cells["U2"].vs_parent is None  # the parent was never scored on U2


def test_backward_transfer_is_now_minus_right_after_learning(matrix) -> None:  # type: ignore[no-untyped-def]
    v3 = matrix.row(3).metrics
    # U1: 2.3 now - 2.0 right after version 1 = +0.3; U2: 2.9 - 2.5 = +0.4
    assert {u.digest: round(u.transfer, 6) for u in v3.updates} == {"U1": 0.3, "U2": 0.4}
    assert v3.bwt == pytest.approx(0.35)  # positive: forgetting
    assert v3.bwt_relative == pytest.approx((0.3 / 2.0 + 0.4 / 2.5) / 2)
    # version 2 improved update 1: negative BWT is backward transfer, not forgetting
    assert matrix.row(2).metrics.bwt == pytest.approx(-0.2)


def test_own_update_and_other_branches_do_not_count(matrix) -> None:  # type: ignore[no-untyped-def]
    assert matrix.row(1).metrics.bwt is None  # nothing learned before version 1
    assert matrix.row(1).metrics.max_forgetting is None
    v4 = matrix.row(4).metrics  # U2 was learned on the other branch (by 2), and 4 never learned it
    assert [u.digest for u in v4.updates] == ["U1"]
    assert v4.bwt == pytest.approx(-0.1)
    assert [u.digest for u in matrix.row(3).metrics.updates] == ["U1", "U2"]  # not U3, its own


def test_maximum_forgetting_is_measured_from_the_best_score(matrix) -> None:  # type: ignore[no-untyped-def]
    worst = matrix.row(3).metrics.max_forgetting
    # U1 was best at version 2 (1.8): forgetting 2.3 - 1.8 = 0.5 beats U2's 0.4, though U2's BWT
    # term is larger
    assert worst.digest == "U1"
    assert worst.best == 1.8 and worst.after_learning == 2.0
    assert worst.forgetting == pytest.approx(0.5)
    assert worst.forgetting_relative == pytest.approx(0.5 / 1.8)


def test_retention_is_measured_against_the_base(matrix) -> None:  # type: ignore[no-untyped-def]
    v3 = matrix.row(3).metrics
    assert list(v3.retention) == ["G"]
    assert v3.retention["G"].absolute == pytest.approx(0.9)
    assert v3.retention_relative == pytest.approx(0.3)


def test_missing_score_right_after_learning_skips_that_update() -> None:
    versions = [VersionScores(1, None, {"G": 3.0}), VersionScores(2, 1, {"G": 3.1, "U1": 2.0})]
    metrics = score_matrix(versions, SETS, {}).row(2).metrics
    assert metrics.updates == [] and metrics.bwt is None
    assert metrics.retention == {}  # no base scores: nothing to compare with


def test_gate_flags_only_gated_sets_above_the_threshold_worst_first() -> None:
    before = {"G": 8.0, "U1": 2.0, "H": 4.0, "N": 1.0}
    after = {"G": 8.5, "U1": 1.5, "H": 5.0, "N": 9.0}
    gated = {"G": "general", "U1": "update 1", "H": "history"}  # N is this update's own split
    found = regressions(before, after, gated, threshold=0.05)
    assert [(r.label, r.change) for r in found] == [("history", 0.25), ("general", 0.0625)]
    # exactly at the threshold is allowed; improvements never count
    assert [r.label for r in regressions(before, after, gated, threshold=0.0625)] == ["history"]
    assert regressions(before, after, gated, threshold=0.5) == []
    assert regressions({}, after, gated, threshold=0.0) == []  # nothing to compare with


# ---- assembling the matrix from registry records --------------------------------------------------

T0 = datetime(2026, 11, 1, tzinfo=UTC)
FP32, NF4 = "fp32 w512/s256", "nf4/bf16 w512/s256"
BASE_MODEL = BaseModelRecord(model_id="builtin:tiny", config_digest="sha256:c", weights_digest="sha256:w")


def dataset(digest: str) -> DatasetRecord:
    return DatasetRecord(digest=digest, format="jsonl", rows=3, created_at=T0)


def version(
    number: int, parent: str | None, current: bool = False, evals: tuple[str, ...] = ()
) -> VersionRecord:
    return VersionRecord(
        name="ip",
        number=number,
        kind="train",
        parent=parent,
        base=BASE_MODEL,
        artifact_digest="sha256:a",
        created_at=T0,
        created_by="t",
        host="h",
        aliases=["current"] if current else [],
        datasets=[DatasetUse(ref=f"ip@{number}", dataset=dataset(d), role="eval", rows=3) for d in evals],
    )


def result(
    ref: str | None, digest: str, value: float, minutes: int, metric: str = "nll", setting: str = FP32
) -> EvalResult:
    return EvalResult(
        ref=ref,
        dataset_digest=digest,
        label=f"set {digest}",
        metric=metric,
        value=value,
        setting=setting,
        created_at=T0 + timedelta(minutes=minutes),
    )


def test_from_records_builds_columns_rows_and_bases() -> None:
    suite = [
        SuiteEntry(name="ip", label="general", role="retention", dataset=dataset("G")),
        SuiteEntry(name="ip", label="update 1", role="update", dataset=dataset("U1"), added_by_version=1),
    ]
    results = [
        result("ip@1", "G", 3.3, 1),
        result("ip@1", "U1", 2.0, 1),
        result("ip@1", "U1", 9.9, 0, metric="perplexity"),
        result("ip@2", "G", 3.7, 2),
        result("ip@2", "G", 3.6, 3),  # a later re-score wins
        result("ip@2", "U1", 2.2, 2),
        result("ip@2", "X", 5.0, 2),  # an ad-hoc `adapters eval --data` set
        result("other@1", "U1", 1.0, 2),  # parent in another adapter: not a parent here
    ]
    base = {BASE_MODEL.fingerprint: [result(None, "G", 3.0, 0), result(None, "U1", 2.8, 0)]}
    versions = [version(1, None, evals=("U1",)), version(2, "ip@1", current=True), version(3, "other@1")]
    matrix = from_records(versions, suite, results, base)

    assert [(s.digest, s.role, s.learned_by) for s in matrix.sets] == [
        ("G", "retention", None),
        ("U1", "update", 1),
        ("X", "extra", None),
    ]
    assert matrix.row(1).version.learned == {"U1"}  # from its eval-role dataset uses
    v2 = matrix.row(2)
    assert v2.version.current and v2.version.parent == 1
    assert v2.cells["G"].nll == 3.6
    assert v2.cells["G"].vs_parent.absolute == pytest.approx(0.3)
    assert v2.cells["U1"].vs_base.absolute == pytest.approx(-0.6)
    assert v2.metrics.bwt == pytest.approx(0.2)
    assert v2.metrics.retention_relative == pytest.approx(0.2)
    assert matrix.row(3).version.parent is None and matrix.row(3).cells == {}


def test_a_split_relearned_on_another_branch_counts_from_that_branch() -> None:
    """Update 2 was held back and retrained from 1 as version 3 with the same eval split; version 4
    continues 3. For 4, U2 was learned by 3 (its lineage), not by 2 (which added it to the suite)."""
    versions = [
        VersionScores(1, None, {"U1": 2.0}, learned=frozenset({"U1"})),
        VersionScores(2, 1, {"U1": 2.5, "U2": 1.5}, learned=frozenset({"U2"})),
        VersionScores(3, 1, {"U1": 2.1, "U2": 1.7}, learned=frozenset({"U2"})),
        VersionScores(4, 3, {"U1": 2.2, "U2": 1.9}),
    ]
    sets = [
        MatrixColumn("U1", "update 1", "update", learned_by=1),
        MatrixColumn("U2", "update 2", "update", learned_by=2),
    ]
    metrics = score_matrix(versions, sets, {}).row(4).metrics
    assert {u.digest: u.learned_by for u in metrics.updates} == {"U1": 1, "U2": 3}
    assert {u.digest: round(u.transfer, 6) for u in metrics.updates} == {"U1": 0.2, "U2": 0.2}
    assert [u.digest for u in score_matrix(versions, sets, {}).row(3).metrics.updates] == ["U1"]


# ---- scoring settings -----------------------------------------------------------------------------


def test_latest_scores_can_keep_to_one_setting() -> None:
    results = [
        result("ip@1", "G", 3.3, 1, setting=NF4),
        result("ip@1", "G", 3.1, 2, setting=FP32),  # newer, but another setting
        result(None, "G", 3.0, 0, setting=NF4),
    ]
    assert latest_scores(results) == {"ip@1": {"G": 3.1}, None: {"G": 3.0}}  # no filter: newest wins
    assert latest_scores(results, setting=NF4) == {"ip@1": {"G": 3.3}, None: {"G": 3.0}}
    assert latest_scores(results, setting=FP32) == {"ip@1": {"G": 3.1}}
    assert latest_scores(results, setting=UNRECORDED) == {}
    assert settings_by_recency(results) == [FP32, NF4]
    assert newest_setting(results) == FP32 and newest_setting([]) is None
    assert newest_setting(results, metric="perplexity") is None


def test_the_matrix_holds_one_setting_the_newest_by_default() -> None:
    """ip@1 and the base were scored in NF4 at training time; ip@2 and ip@1 again, by hand, in FP32
    later. The default matrix is FP32 throughout (its base row too); NF4 is there on request."""
    suite = [SuiteEntry(name="ip", label="general", role="retention", dataset=dataset("G"))]
    results = [
        result("ip@1", "G", 3.3, 1, setting=NF4),
        result("ip@2", "G", 3.9, 2, setting=NF4),
        result("ip@1", "G", 3.2, 5, setting=FP32),
        result("ip@1", "X", 4.0, 5, setting=NF4),  # an extra set scored only in NF4
    ]
    base = {
        BASE_MODEL.fingerprint: [
            result(None, "G", 3.0, 0, setting=NF4),
            result(None, "G", 2.9, 5, setting=FP32),
        ]
    }
    versions = [version(1, None), version(2, "ip@1", current=True)]

    newest = from_records(versions, suite, results, base)
    assert newest.setting == FP32 and newest.other_settings == [NF4]
    assert [s.digest for s in newest.sets] == ["G"]  # X has no FP32 score: no column
    assert newest.bases == {BASE_MODEL.fingerprint: {"G": 2.9}}
    assert newest.row(1).cells["G"].nll == 3.2
    assert newest.row(1).cells["G"].vs_base.before == 2.9  # the FP32 base, never the NF4 one
    assert newest.row(2).cells == {}  # ip@2 has no FP32 score: not an NF4 one in its place

    nf4 = from_records(versions, suite, results, base, setting=NF4)
    assert nf4.setting == NF4 and nf4.other_settings == [FP32]
    assert [s.digest for s in nf4.sets] == ["G", "X"]
    assert nf4.row(2).cells["G"].vs_parent.before == 3.3  # ip@1's NF4 score, not its newer FP32 one
    assert nf4.row(2).cells["G"].vs_base.before == 3.0
    assert nf4.row(2).metrics.retention["G"].before == 3.0

    unscored = from_records(versions, suite, [], {})
    assert unscored.setting is None and unscored.settings == [] and unscored.other_settings == []
    base_only = from_records(versions, suite, [], base)  # only `adapters eval ip@base` so far
    assert base_only.setting == FP32 and base_only.bases == {BASE_MODEL.fingerprint: {"G": 2.9}}

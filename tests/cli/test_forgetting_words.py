"""The "max forgetting" column says "none" when every earlier update improved, instead of printing a
negative forgetting (a newcomer reads "-0.2000" as something forgotten)."""

from rich.console import Console

from loraledger.cli.matrix import metrics_table
from loraledger.registry.forgetting import MatrixColumn, VersionScores, score_matrix
from loraledger.wording import forgetting_words

SETS = [MatrixColumn("U1", "update 1", "update", learned_by=1), MatrixColumn("U2", "update 2", "update", 2)]
BASE = {"U1": 2.8, "U2": 3.1}
# v2 improves update 1 (2.0 -> 1.8); v3 forgets it (best 1.8 -> 2.3) and update 2 (2.5 -> 2.9).
VERSIONS = [
    VersionScores(1, None, {"U1": 2.0}),
    VersionScores(2, 1, {"U1": 1.8, "U2": 2.5}),
    VersionScores(3, 2, {"U1": 2.3, "U2": 2.9}),
]


def _rows() -> dict[str, str]:
    console = Console(width=200, record=True, color_system=None)
    console.print(metrics_table(score_matrix(VERSIONS, SETS, {"base": BASE}), threshold=0.05))
    lines = console.export_text().splitlines()
    return {line.split()[1]: line for line in lines if line.startswith("│ v")}


def test_improvement_reads_none_and_names_the_improvement() -> None:
    row = _rows()["v2"]
    assert "none: every earlier update improved (least: update 1 -0.2000, -10.0%)" in row
    assert "on update 1" not in row


def test_real_forgetting_keeps_its_number() -> None:
    assert "+0.5000 (+27.8%) on update 1" in _rows()["v3"]


def test_words_for_each_case() -> None:
    matrix = score_matrix(VERSIONS, SETS, {"base": BASE})
    assert forgetting_words(matrix.row(1).metrics.max_forgetting, "") == "-"  # nothing earlier
    worst = matrix.row(2).metrics.max_forgetting
    assert worst is not None and worst.forgetting < 0
    assert forgetting_words(worst, "update 1").startswith("none: ")
    flat = VersionScores(4, 1, {"U1": 2.0})
    unchanged = score_matrix([VERSIONS[0], flat], SETS, {"base": BASE}).row(4).metrics.max_forgetting
    assert forgetting_words(unchanged, "update 1") == "none"

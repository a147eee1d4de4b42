"""The words and numbers that explain a score matrix, shared by the CLI's tables, the HTML report
and the dashboard: one legend, one way to print a change, one rule for 'held back'."""

import math

from loraledger.registry.forgetting import ScoreMatrix, UpdateForgetting
from loraledger.schemas.records import UNRECORDED

NOISE = 0.005  # relative changes smaller than this are shown dim: scoring noise, not a trend


LEGEND = (
    "Mean token NLL (nats), lower is better. Under each score: change against the parent (p) and "
    "against the base model (b). BWT (backward transfer) = mean over the earlier updates in the "
    "lineage of (NLL on its eval split now - NLL right after it was learned): positive = forgetting, "
    "negative = later updates helped. Max forgetting = the largest rise of an earlier update's NLL above "
    "the best it ever had. Retention = change on general-text retention sets against the base."
)


SETTING_LEGEND = (
    "Setting = how the models were loaded for scoring: weights format / compute dtype, window / stride; "
    "versions and base are compared only within one setting."
)


def percent(relative: float | None) -> str:
    if relative is None or not math.isfinite(relative):
        return "-"
    return f"{relative:+.1%}"


def forgetting_words(worst: UpdateForgetting | None, label: str) -> str:
    """The "max forgetting" cell. Forgetting is an earlier update's NLL now minus the best it ever had;
    when even the largest of them is not above zero, nothing was forgotten: say "none" and show the
    least improvement as an improvement, not as a negative forgetting."""
    if worst is None:
        return "-"
    if worst.forgetting > 0:
        return f"{worst.forgetting:+.4f} ({percent(worst.forgetting_relative)}) on {label}"
    if worst.forgetting == 0:
        return "none"
    return (
        f"none: every earlier update improved (least: {label} "
        f"{worst.forgetting:+.4f}, {percent(worst.forgetting_relative)})"
    )


def held_back(matrix: ScoreMatrix, ever_current: set[int]) -> set[int]:
    return {row.version.number for row in matrix.rows} - ever_current


def setting_words(matrix: ScoreMatrix) -> str:
    """Which setting the numbers come from, for a title: ``scored as nf4/bf16 w512/s256``."""
    if matrix.setting is None:
        return "no scores yet"
    if matrix.setting == UNRECORDED:
        return "scored before loraledger recorded how (setting unrecorded)"
    return f"scored as {matrix.setting}"


def settings_note(matrix: ScoreMatrix, name: str) -> str | None:
    """What a matrix leaves out: the scores of other settings, and how to see them."""
    others = matrix.other_settings
    if not others:
        return None
    listed = ", ".join(others)
    return (
        f"{name} also has scores in {listed}, left out here: they are not comparable with these "
        f"(`adapters evals {name} --setting '{others[0]}'`)"
    )

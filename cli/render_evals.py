"""Rich tables for `adapters eval` and `adapters suite list`."""

from rich.console import Group
from rich.table import Table
from rich.text import Text

from loraledger.cli.matrix import colour
from loraledger.evaluation import EvalReport
from loraledger.schemas.records import SuiteEntry
from loraledger.wording import percent


def eval_table(report: EvalReport) -> Group:
    parts: list[Table | Text] = []
    if report.lines:
        scored = f", scored as {report.setting}" if report.setting else ""
        table = Table(header_style="bold", title=Text(f"{report.target.title}{scored}"))
        for column in ("set", "nll", "perplexity", "base nll", "vs base", ""):
            table.add_column(column, justify="left" if column in ("set", "") else "right")
        for line in report.lines:
            table.add_row(
                line.label,
                "-" if line.nll is None else f"{line.nll:.4f}",
                "-" if line.perplexity is None else f"{line.perplexity:.2f}",
                "-" if line.base_nll is None else f"{line.base_nll:.4f}",
                Text(percent(line.vs_base), colour(line.vs_base, 0.05)),
                Text("scored now" if line.scored_now else "recorded", "dim"),
            )
        parts.append(table)
    if report.benchmarks:
        table = Table(header_style="bold", title=f"{report.target.title}: lm-evaluation-harness")
        for column in ("task", "metric", "value"):
            table.add_column(column, justify="right" if column == "value" else "left")
        for result in report.benchmarks:
            table.add_row(result.label or "-", result.metric, f"{result.value:.4f}")
        parts.append(table)
    return Group(*parts)


def suite_table(name: str, entries: list[SuiteEntry], threshold: float) -> Group:
    table = Table(header_style="bold", title=f"{name}: eval suite")
    for column in ("label", "role", "rows", "dataset", "source"):
        table.add_column(column, justify="right" if column == "rows" else "left")
    for entry in entries:
        role = f"update (v{entry.added_by_version})" if entry.added_by_version else entry.role
        table.add_row(
            entry.label,
            role,
            f"{entry.dataset.rows:,}",
            entry.dataset.digest.split(":")[-1][:12],
            entry.dataset.source or "-",
        )
    note = Text(
        f"gate: a new version is held back when any of these gets more than {threshold:.1%} worse (NLL) "
        f"than its parent (change with `adapters suite threshold {name} VALUE`)",
        "dim",
    )
    return Group(table, note)

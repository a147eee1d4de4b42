"""Measuring forgetting: eval, evals (the score matrix), suite (what every version is scored on),
report (plots and an HTML page)."""

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Literal, cast

import click

from loraledger.cli.options import json_option, pass_ledger, quiet_option
from loraledger.cli.output import err, out, print_json, stage

if TYPE_CHECKING:
    from loraledger.ledger import Ledger


def _stage(quiet: bool) -> Callable[[str], None]:
    return (lambda message: None) if quiet else stage


@click.command("eval")
@click.argument("ref")
@click.option(
    "--data",
    "files",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Held-out text to score (JSONL, JSON, CSV, Parquet, text). Repeatable. "
    "Without --data: every set of the adapter's suite.",
)
@click.option("--as", "label", metavar="NAME", help="Label the scores of the one --data file.")
@click.option(
    "--lm-eval",
    "lm_eval_tasks",
    metavar="TASKS",
    help="Comma-separated lm-evaluation-harness tasks to run instead (needs the lm-eval extra).",
)
@click.option("--limit", type=int, help="With --lm-eval: at most this many examples per task.")
@click.option("--rescore", is_flag=True, help="Compute scores again even where some are recorded.")
@click.option(
    "--quantize",
    type=click.Choice(["4bit", "8bit", "none"]),
    help="Load the base this way for scoring (default: as the version was trained). Scores are "
    "recorded per setting and compared only within one.",
)
@quiet_option
@json_option
@pass_ledger
def eval_command(
    ledger: "Ledger",
    ref: str,
    files: tuple[Path, ...],
    label: str | None,
    lm_eval_tasks: str | None,
    limit: int | None,
    rescore: bool,
    quantize: str | None,
    quiet: bool,
    as_json: bool,
) -> None:
    """Score REF on held-out text: mean token NLL and perplexity, recorded in the registry.

    REF is a version (NAME, NAME@3, NAME@ALIAS) or NAME@base for the base model of NAME's current
    version. It is scored the way the version was trained (quantization, text field, eval window),
    so that the scores match the train-time ones; --quantize scores it another way. Scores are kept
    per (version, dataset, setting): asking again reads them back. The base model is scored on the
    same sets once per setting, and the change against it is shown.
    """
    if lm_eval_tasks is not None:
        tasks = [task.strip() for task in lm_eval_tasks.split(",") if task.strip()]
        report = ledger.evaluate_tasks(ref, tasks, limit=limit, stage=_stage(quiet))
    else:
        report = ledger.evaluate(
            ref,
            list(files),
            label=label,
            rescore=rescore,
            quantize=cast(Literal["none", "4bit", "8bit"] | None, quantize),
            stage=_stage(quiet),
        )
    if as_json:
        from loraledger.cli.matrix import finite

        print_json(
            finite(
                {
                    "target": report.target.title,
                    "ref": report.target.version.ref,
                    "base_only": report.target.base_only,
                    "setting": report.setting,
                    "scores": [
                        {
                            "label": line.label,
                            "digest": line.digest,
                            "nll": line.nll,
                            "perplexity": line.perplexity,
                            "base_nll": line.base_nll,
                            "vs_base": line.vs_base,
                            "scored_now": line.scored_now,
                        }
                        for line in report.lines
                    ],
                    "benchmarks": [
                        {"task": b.label, "metric": b.metric, "value": b.value} for b in report.benchmarks
                    ],
                }
            )
        )
        return
    from loraledger.cli.render_evals import eval_table

    out().print(eval_table(report))


@click.command()
@click.argument("name")
@click.option(
    "--setting",
    metavar="SETTING",
    help="Show the scores of this scoring setting (e.g. 'fp32 w512/s256'); default: the setting of "
    "the most recent score.",
)
@json_option
@pass_ledger
def evals(ledger: "Ledger", name: str, setting: str | None, as_json: bool) -> None:
    """The score matrix of NAME: versions x eval sets (NLL), each against its parent and the base,
    with backward transfer, maximum forgetting and retention under it. Every number in it comes from
    one scoring setting."""
    from loraledger.cli.matrix import matrix_json, matrix_view

    view = ledger.forgetting(name, setting=setting)
    traces = ledger.retention_searches(name)
    if as_json:
        print_json(matrix_json(view) | {"retention": traces})
        return
    out().print(matrix_view(view))
    for ref, trace in traces.items():  # the retention searches, in one line each
        chosen = next((c for c in trace["candidates"] if c.get("chosen")), None)
        picked = (
            f"chose {chosen['remedy']} alpha={chosen['alpha']:g} replay={chosen['replay']:g}: forgetting "
            f"{chosen['worst_forgetting']:+.1%}, {chosen['gain_share'] or 0:.0%} of the gain"
            if chosen
            else "nothing met it"
        )
        out().print(
            f"{ref}: retention budget {trace['budget']:.1%}, {len(trace['candidates'])} candidates, "
            f"{picked} (`adapters show {ref}`)"
        )


@click.group()
def suite() -> None:
    """NAME's eval suite: every update's eval split plus general-text retention sets."""


@suite.command("add")
@click.argument("name")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--label", help="Name of the set in tables and plots (default: the file's stem).")
@pass_ledger
def suite_add(ledger: "Ledger", name: str, file: Path, label: str | None) -> None:
    """Add FILE (general text the adapter must not forget) to NAME's suite as a retention set.

    Every later version is scored on it, and the gate holds back a version that gets worse on it.
    Works before NAME's first version too.
    """
    from rich.markup import escape

    entry = ledger.add_to_suite(name, file, label=label)
    rows = f"{entry.dataset.rows:,} rows"
    out().print(f"{name} suite: {entry.label} ({entry.role}, {rows}, {entry.dataset.digest[:19]})")
    # `adapters eval` scores each version the way it was trained: in the setting its scores are in.
    known = ledger.suite(name).setting
    setting = f" (each the way it was trained; {name}'s latest scores are in {known})" if known else ""
    err().print(f"[dim]score existing versions on it with `adapters eval {name}@N`{escape(setting)}[/]")


@suite.command("list")
@click.argument("name")
@json_option
@pass_ledger
def suite_list(ledger: "Ledger", name: str, as_json: bool) -> None:
    """The sets in NAME's suite and its gate threshold."""
    suite = ledger.suite(name)
    entries, threshold = suite.entries, suite.threshold
    if as_json:
        print_json(
            {
                "name": name,
                "threshold": threshold,
                "sets": [
                    {
                        "label": e.label,
                        "role": e.role,
                        "learned_by": e.added_by_version,
                        "digest": e.dataset.digest,
                        "rows": e.dataset.rows,
                        "source": e.dataset.source,
                    }
                    for e in entries
                ],
            }
        )
        return
    from loraledger.cli.render_evals import suite_table

    out().print(suite_table(name, entries, threshold))


@suite.command("threshold")
@click.argument("name")
@click.argument("value", type=float)
@pass_ledger
def suite_threshold(ledger: "Ledger", name: str, value: float) -> None:
    """Set NAME's gate: the largest allowed relative NLL increase (0.05 = 5%) on retention sets and
    earlier updates' eval splits before a new version is held back."""
    from loraledger.cli.output import warn

    before = ledger.set_threshold(name, value)
    if value >= 1:
        warn(f"{value} allows NLL to grow by {value:.0%}; for {value:g}% pass {value / 100:g}")
    out().print(f"{name}: gate threshold {before:.1%} -> {value:.1%}")


@click.command()
@click.argument("name")
@click.option(
    "--out",
    "out_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="FILE.html (self-contained page: lineage, matrix, metrics, plots) or FILE.png (the plots).",
)
@pass_ledger
def report(ledger: "Ledger", name: str, out_path: Path) -> None:
    """Plot each eval set's score across NAME's lineage; write a PNG or a self-contained HTML page."""
    written = ledger.report(name, out_path)
    out().print(str(written))


COMMANDS = [eval_command, evals, suite, report]

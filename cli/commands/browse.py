"""Read-only views of the registry: list, show, lineage, history, datasets, diff."""

from typing import TYPE_CHECKING

import click

from loraledger.cli.options import json_option, pass_ledger
from loraledger.cli.output import out, print_json

if TYPE_CHECKING:
    from loraledger.ledger import Ledger


@click.command("list")
@click.argument("name", required=False)
@json_option
@pass_ledger
def list_versions(ledger: "Ledger", name: str | None, as_json: bool) -> None:
    """List versions (of NAME, or of every adapter)."""
    if as_json:  # every field of every version: heavier than the table, which loads only what it shows
        from loraledger.cli.render import version_json

        print_json([version_json(v, full=False) for v in ledger.versions(name)])
        return
    summaries = ledger.summaries(name)
    if not summaries:
        out().print("no adapters yet: train one with `adapters train NAME --base MODEL --data FILE`")
        return
    from loraledger.cli.render import versions_table

    out().print(versions_table(summaries, width=out().width))


@click.command()
@click.argument("ref")
@json_option
@pass_ledger
def show(ledger: "Ledger", ref: str, as_json: bool) -> None:
    """Everything recorded about one version: REF is NAME, NAME@3, NAME@v3 or NAME@ALIAS."""
    from loraledger.cli.render import version_detail, version_json

    version = ledger.version(ref)
    if as_json:
        print_json(version_json(version, full=True))
    else:
        out().print(version_detail(version))


@click.command()
@click.argument("name")
@json_option
@pass_ledger
def lineage(ledger: "Ledger", name: str, as_json: bool) -> None:
    """The training tree of NAME, with stack and merge inputs.

    --json prints one entry per version with its parent and inputs (a flat list: lineages run to
    thousands of versions, deeper than nested JSON can go)."""
    if as_json:
        from loraledger.shapes import lineage_json

        print_json(lineage_json(ledger.summaries(name)))
        return
    from loraledger.cli.render import lineage_tree

    out().print(lineage_tree(name, ledger.lineage(name)))


@click.command()
@click.argument("name")
@json_option
@pass_ledger
def history(ledger: "Ledger", name: str, as_json: bool) -> None:
    """Alias moves of NAME (promotions, rollbacks, tags): who, when, why."""
    events = ledger.history(name)
    if as_json:
        from loraledger.shapes import history_json

        print_json(history_json(events))
        return
    from loraledger.cli.render import history_table

    out().print(history_table(events), crop=False)


@click.command()
@click.argument("name", required=False)
@json_option
@pass_ledger
def datasets(ledger: "Ledger", name: str | None, as_json: bool) -> None:
    """Which versions used which data, in which role (train, eval, replay)."""
    uses = ledger.datasets(name)
    if as_json:
        from loraledger.shapes import datasets_json

        print_json(datasets_json(uses))
        return
    from loraledger.cli.render import datasets_table

    out().print(datasets_table(uses))


@click.command()
@click.argument("a")
@click.argument("b")
@click.option("--all", "everything", is_flag=True, help="Show every field, not only those that differ.")
@json_option
@pass_ledger
def diff(ledger: "Ledger", a: str, b: str, everything: bool, as_json: bool) -> None:
    """Hyperparameters, data and eval scores of two versions side by side (differences only)."""
    result = ledger.diff(a, b, everything=everything)
    if as_json:
        print_json(result.to_dict())
        return
    left, right, differences = result.left, result.right, result.changes
    if not differences:
        out().print(f"{left} and {right} record the same settings, data and scores")
        return
    from loraledger.cli.render import diff_table

    out().print(diff_table(left, right, differences))


COMMANDS = [list_versions, show, lineage, history, datasets, diff]

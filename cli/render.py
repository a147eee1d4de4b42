"""Rich tables and trees for records; plain dicts for --json. Imported only by commands that draw."""

from datetime import datetime
from typing import TYPE_CHECKING, Any

from rich.table import Table
from rich.tree import Tree

from loraledger.registry import LineageNode
from loraledger.schemas.records import AliasEvent, DatasetUse, VersionRecord

if TYPE_CHECKING:
    from loraledger.cli.update import UpdateResult


def short(digest: str | None, width: int = 12) -> str:
    if not digest:
        return "-"
    return digest.split(":", 1)[-1][:width]


def when(moment: datetime) -> str:
    return moment.astimezone().strftime("%Y-%m-%d %H:%M")


def number(value: float | int | None, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.{digits}f}"


def versions_table(versions: list[VersionRecord]) -> Table:
    table = Table(title=None, show_lines=False, header_style="bold")
    for column in ("name", "ver", "kind", "parent", "base", "data", "train tokens", "final loss", "created"):
        table.add_column(
            column, justify="right" if column in ("ver", "train tokens", "final loss") else "left"
        )
    table.add_column("", justify="left")
    for version in versions:
        marks = ["current" if version.is_current else "", *(a for a in version.aliases if a != "current")]
        table.add_row(
            version.name,
            str(version.number),
            version.kind,
            version.parent or ", ".join(i.ref for i in version.inputs) or "-",
            version.base.model_id if len(version.base.model_id) < 40 else "…" + version.base.model_id[-39:],
            short(version.train_digest),
            number(version.train_tokens),
            number(version.final_loss),
            when(version.created_at),
            "[bold green]" + " ".join(m for m in marks if m) + "[/]" if any(marks) else "",
        )
    return table


def version_json(version: VersionRecord, *, full: bool) -> dict[str, Any]:
    data = version.model_dump(mode="json")
    data["ref"] = version.ref
    data["current"] = version.is_current
    data["train_digest"] = version.train_digest
    if not full:
        for key in ("evals", "publications"):
            data.pop(key, None)
    return data


def version_detail(version: VersionRecord) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    rows: list[tuple[str, str]] = [
        ("ref", version.ref + ("  (current)" if version.is_current else "")),
        ("kind", version.kind),
        ("parent", version.parent or "-"),
        ("inputs", ", ".join(f"{i.ref}×{i.weight:g}" for i in version.inputs) or "-"),
        ("aliases", ", ".join(version.aliases) or "-"),
        ("base", version.base.model_id + (f" @ {version.base.revision}" if version.base.revision else "")),
        ("base config", version.base.config_digest),
        ("base weights", version.base.weights_digest or "-"),
        ("artifact", version.artifact_digest),
        ("lora", ", ".join(f"{k}={v}" for k, v in version.lora.items()) or "-"),
        ("training", ", ".join(f"{k}={v}" for k, v in version.training.items() if v is not None) or "-"),
        ("seed", str(version.seed) if version.seed is not None else "-"),
        ("train tokens", number(version.train_tokens)),
        ("final loss", number(version.final_loss)),
        ("libraries", ", ".join(f"{k} {v}" for k, v in version.libraries.items()) or "-"),
        ("created", f"{when(version.created_at)} by {version.created_by} on {version.host}"),
    ]
    if version.note:
        rows.append(("note", version.note))
    for key, value in rows:
        table.add_row(key, value)
    for use in version.datasets:
        table.add_row(f"data ({use.role})", _use(use))
    for result in version.evals:
        table.add_row(
            f"eval {result.label or short(result.dataset_digest)}", f"{result.metric} = {result.value:.4f}"
        )
    for publication in version.publications:
        table.add_row(publication.kind, f"{publication.target} {_details(publication.details)}")
    return table


def _use(use: DatasetUse) -> str:
    label = f"{use.label}: " if use.label else ""
    tokens = f", {use.tokens:,} tokens" if use.tokens else ""
    return f"{label}{use.dataset.digest} ({use.rows:,} rows{tokens}; {use.dataset.source or '-'})"


def _details(details: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in details.items())


def lineage_tree(name: str, roots: list[LineageNode]) -> Tree:
    tree = Tree(f"[bold]{name}[/]")

    def add(branch: Tree, node: LineageNode) -> None:
        version = node.version
        mark = " [bold green]← current[/]" if version.is_current else ""
        loss = f" loss {version.final_loss:.3f}" if version.final_loss is not None else ""
        label = f"{version.ref} [dim]{version.kind}, data {short(version.train_digest)}{loss}[/]{mark}"
        child = branch.add(label)
        for item in node.inputs:
            child.add(f"[cyan]input[/] {item.version.ref} [dim]{item.version.kind}[/]")
        for grandchild in node.children:
            add(child, grandchild)

    for root in roots:
        add(tree, root)
    return tree


def history_table(events: list[AliasEvent]) -> Table:
    table = Table(header_style="bold")
    for column in ("when", "alias", "from", "to", "who", "reason"):
        table.add_column(column)
    for event in events:
        table.add_row(
            when(event.created_at),
            event.alias,
            str(event.from_version) if event.from_version is not None else "-",
            str(event.to_version) if event.to_version is not None else "(removed)",
            event.created_by,
            event.reason or "",
        )
    return table


def datasets_table(uses: list[DatasetUse]) -> Table:
    table = Table(header_style="bold")
    for column in ("dataset", "rows", "tokens", "source", "version", "role", "label"):
        table.add_column(column, justify="right" if column in ("rows", "tokens") else "left")
    for use in uses:
        table.add_row(
            short(use.dataset.digest, 16),
            number(use.dataset.rows),
            number(use.tokens),
            use.dataset.source or "-",
            use.ref,
            use.role,
            use.label or "",
        )
    return table


def diff_table(a: str, b: str, differences: dict[str, tuple[Any, Any]]) -> Table:
    table = Table(header_style="bold")
    table.add_column("field")
    table.add_column(a)
    table.add_column(b)
    for key, (left, right) in differences.items():
        table.add_row(key, _cell(left), _cell(right))
    return table


def _cell(value: Any) -> str:
    if value is None:
        return "[dim]-[/]"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def train_summary(result: "UpdateResult") -> Table:
    outcome = result.outcome
    stats = outcome.data
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    table.add_row(
        "version", result.version.ref + (f" (from {result.version.parent})" if result.version.parent else "")
    )
    table.add_row(
        "data",
        f"{stats.rows:,} rows -> {stats.sequences:,} sequences ({stats.windows_split:,} extra windows "
        f"from long documents), {stats.tokens:,} tokens, {stats.padding_share:.1%} padding",
    )
    table.add_row(
        "training",
        f"{outcome.steps} steps in {outcome.seconds:.1f}s, {outcome.tokens_per_second:,.0f} tokens/s, "
        f"final loss {number(outcome.final_loss)}",
    )
    table.add_row(
        "lora", f"r={outcome.lora.r} alpha={outcome.lora.alpha:g} on {','.join(outcome.target_modules)}"
    )
    for label, value in result.scores.items():
        table.add_row("eval", f"{label}: nll {value:.4f}")
    if result.regressions:
        worst = ", ".join(
            f"{r.label} {r.change:+.1%} ({r.before:.4f} -> {r.after:.4f})" for r in result.regressions
        )
        verdict = (
            "[yellow]current moved anyway (--force)[/]" if result.promoted else "[red]current NOT moved[/]"
        )
        table.add_row("gate", f"{verdict}: forgetting on {worst}")
        if not result.promoted:
            table.add_row(
                "",
                f"retrain with --replay 0.2 (mixes earlier data back in), promote by hand with "
                f"`adapters promote {result.version.ref}`, or keep the current version",
            )
    elif result.version.is_current:
        table.add_row("current", f"{result.version.name}@current -> {result.version.ref}")
    return table

"""Rich tables and trees for records; plain dicts for --json. Imported only by commands that draw."""

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from rich import box
from rich.table import Table

from loraledger.cli.listing import Branch, Cell, Column, Listing, Outline
from loraledger.registry import LineageNode
from loraledger.schemas.records import AliasEvent, DatasetUse, VersionRecord, VersionSummary
from loraledger.shapes import version_json as version_json  # shared with the dashboard

if TYPE_CHECKING:
    from loraledger.training import TrainResult


def short(digest: str | None, width: int = 12) -> str:
    if not digest:
        return "-"
    return digest.split(":", 1)[-1][:width]


def when(moment: datetime) -> str:
    """Local time to the minute, ``2026-11-29 14:02`` (isoformat: listings call this per row)."""
    return moment.astimezone().isoformat(sep=" ", timespec="minutes")[:16]


def number(value: float | int | None, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.{digits}f}"


def short_base(model_id: str) -> str:
    """A base model's id as a listing shows it: the Hub repo or folder name (``Llama-3.1-8B``)."""
    if model_id.startswith("builtin:"):
        return model_id
    return model_id.rstrip("/").rsplit("/", 1)[-1] or model_id


def compact(value: int | None) -> str:
    """12,345 -> 12.3k; 4,200,000 -> 4.2M: token counts in a narrow column."""
    if value is None:
        return "-"
    for limit, suffix in ((1_000_000_000, "G"), (1_000_000, "M"), (1_000, "k")):
        if value >= limit:
            return f"{value / limit:.1f}{suffix}"
    return str(value)


def versions_table(versions: Sequence[VersionRecord | VersionSummary], width: int = 80) -> Listing:
    """One row per version, fitted to ``width`` columns: below 100 the kind folds into the "from"
    column and times show as dates; a base shared by every row moves to the caption; token counts
    show from 90 columns. A ``Listing``, not a rich Table: registries hold thousands of versions."""
    summaries = [v.summary() if isinstance(v, VersionRecord) else v for v in versions]
    wide = width >= 100
    bases = {v.base_model_id for v in summaries}
    show_base = len(bases) > 1 or width >= 120
    columns = [Column("version")]
    if wide:
        columns.append(Column("kind"))
    columns.append(Column("from", shrink=True))
    if show_base:
        columns.append(Column("base", shrink=True))
    columns.append(Column("data"))
    if width >= 90:
        columns.append(Column("tokens", justify="right"))
    columns += [Column("loss", justify="right"), Column("created"), Column("aliases", shrink=True)]
    listing = Listing(columns)
    for version in summaries:
        origin = version.parent or " + ".join(i.ref for i in version.inputs) or "-"
        if not wide and version.kind != "train":
            origin = f"{version.kind}: {origin}" if origin != "-" else version.kind
        cells: list[Cell] = [(version.ref, "bold") if version.is_current else version.ref]
        if wide:
            cells.append(version.kind)
        cells.append(origin)
        if show_base:
            cells.append(short_base(version.base_model_id))
        cells.append(short(version.train_digest, 12 if wide else 10))
        if width >= 90:
            cells.append(compact(version.train_tokens))
        created = when(version.created_at) if wide else when(version.created_at)[:10]
        cells += [number(version.final_loss, 3), created, _aliases(version.aliases)]
        listing.add_row(*cells)
    if not show_base and bases:
        listing.caption = f"base: {next(iter(bases))}"
    return listing


def _aliases(aliases: list[str]) -> Cell:
    ordered = (["current"] if "current" in aliases else []) + [a for a in aliases if a != "current"]
    return (" ".join(ordered), "bold green" if "current" in aliases else "green")


def version_detail(version: VersionRecord) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")  # digests are shown whole: they are what a user copies
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
        (
            "training",
            ", ".join(f"{k}={v}" for k, v in version.training.items() if v is not None and k != "retention")
            or "-",
        ),
        ("seed", str(version.seed) if version.seed is not None else "-"),
        ("train tokens", number(version.train_tokens)),
        ("final loss", number(version.final_loss)),
        ("libraries", ", ".join(f"{k} {v}" for k, v in version.libraries.items()) or "-"),
        ("created", f"{when(version.created_at)} by {version.created_by} on {version.host}"),
    ]
    if version.note:
        rows.append(("note", version.note))
    if isinstance(version.training.get("retention"), dict):
        from loraledger.cli.render_retention import trace_lines

        rows += trace_lines(version.training["retention"])
    for key, value in rows:
        table.add_row(key, value)
    for use in version.datasets:
        table.add_row(f"data ({use.role})", _use(use))
    for index, result in enumerate(version.evals):  # labels can be long: they go in the value column
        table.add_row(
            "" if index else "evals",
            f"{result.label or short(result.dataset_digest)}: {result.metric} = {result.value:.4f} "
            f"({result.setting})",
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


def lineage_tree(name: str, roots: list[LineageNode]) -> Outline:
    """The training tree, each line of descent drawn flat: a version sits right below the one it
    continued from, and only a branch (a version continued more than once, e.g. after a rollback)
    indents. At a branch the line leading to ``current`` (else the newest) stays flat, so a lineage of
    thousands of versions is as wide as its branching, not as deep as its length. Wherever the version
    above is not the parent (a second root, a second branch), the label says where it came from."""
    current_line = _current_line(roots)

    def line_of(node: LineageNode | None) -> list[tuple[LineageNode, Branch]]:
        entries = []
        while node is not None:
            branch = Branch(_lineage_label(node.version))
            branch.children = [
                Branch(
                    [
                        ("input ", "cyan"),
                        f"{item.version.ref} ×{link.weight:g} ",
                        (item.version.kind, "dim"),
                    ]
                )
                for item, link in zip(node.inputs, node.version.inputs, strict=False)
            ]
            trunk = next(
                (c for c in node.children if c.version.ref in current_line),
                node.children[-1] if node.children else None,
            )
            offshoots = [entry for child in node.children if child is not trunk for entry in line_of(child)]
            _mark_origins(offshoots, node.version.ref)
            branch.children += [b for _, b in offshoots]
            entries.append((node, branch))
            node = trunk
        return entries

    lines = [entry for root in roots for entry in line_of(root)]
    _mark_origins(lines, None)
    return Outline([(name, "bold")], [branch for _, branch in lines])


def _lineage_label(version: VersionSummary) -> list[Cell]:
    details: str = version.kind
    if version.train_digest:
        details += f", data {short(version.train_digest)}"
    if version.final_loss is not None:
        details += f", loss {version.final_loss:.3f}"
    cells: list[Cell] = [version.ref + " ", (details, "dim")]
    cells += [(f" {alias}", "green") for alias in version.aliases if alias != "current"]
    if version.is_current:
        cells.append((" ← current", "bold green"))
    return cells


def _mark_origins(entries: list[tuple[LineageNode, Branch]], above: str | None) -> None:
    """Label each version drawn below something other than its parent with where it came from."""
    for node, branch in entries:
        parent = node.version.parent
        if parent != above:
            branch.label = [*branch.label[:2], (f" (from {parent})" if parent else " (no parent)", "dim"),
                            *branch.label[2:]]  # fmt: skip
        above = node.version.ref


def _current_line(roots: list[LineageNode]) -> set[str]:
    """Refs from the root down to the current version."""
    parents: dict[str, str | None] = {}
    current = None
    stack: list[tuple[LineageNode, str | None]] = [(root, None) for root in roots]
    while stack:
        node, parent = stack.pop()
        parents[node.version.ref] = parent
        if node.version.is_current:
            current = node.version.ref
        stack += [(child, node.version.ref) for child in node.children]
    line = set()
    while current is not None:
        line.add(current)
        current = parents.get(current)
    return line


def history_table(events: list[AliasEvent]) -> Listing:
    """Every alias move, oldest first. Reasons are never cut: print with ``crop=False``."""
    listing = Listing([Column(c) for c in ("when", "alias", "from", "to", "who", "reason")])
    for event in events:
        listing.add_row(
            when(event.created_at),
            event.alias,
            str(event.from_version) if event.from_version is not None else "-",
            str(event.to_version) if event.to_version is not None else "(removed)",
            event.created_by,
            event.reason or "",
        )
    return listing


def datasets_table(uses: list[DatasetUse]) -> Listing:
    listing = Listing(
        [
            Column("dataset"),
            Column("rows", justify="right"),
            Column("tokens", justify="right"),
            Column("source", shrink=True, keep="end"),
            Column("version"),
            Column("role"),
            Column("label", shrink=True),
        ]
    )
    for use in uses:
        listing.add_row(
            short(use.dataset.digest, 12),
            compact(use.dataset.rows),
            compact(use.tokens),
            use.dataset.source or "-",
            use.ref,
            use.role,
            use.label or "",
        )
    return listing


def diff_table(a: str, b: str, differences: dict[str, tuple[Any, Any]]) -> Table:
    table = Table(box=box.SIMPLE_HEAD, header_style="bold", show_edge=False, padding=(0, 1, 0, 0))
    table.add_column("field", overflow="fold")
    table.add_column(a, overflow="fold")
    table.add_column(b, overflow="fold")
    for key, (left, right) in differences.items():
        table.add_row(key, _cell(left), _cell(right))
    return table


def _cell(value: Any) -> str:
    if value is None:
        return "[dim]-[/]"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list):
        return "\n".join(_cell(item) for item in value) or "[dim]none[/]"
    if isinstance(value, str) and value.startswith("sha256:"):
        digest, _, rest = value.partition(" ")
        return short(digest, 16) + (f" {rest}" if rest else "")
    return str(value)


def train_summary(result: "TrainResult") -> Table:
    outcome = result.outcome
    stats = outcome.data
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    table.add_row(
        "version", result.version.ref + (f" (from {result.version.parent})" if result.version.parent else "")
    )
    replayed = result.version.training.get("replay_rows") or 0
    skipped = f", {stats.windows_skipped:,} without loss left out" if stats.windows_skipped else ""
    table.add_row(
        "data",
        f"{stats.rows:,} rows{f' ({replayed:,} replayed)' if replayed else ''} -> {stats.sequences:,} "
        f"windows ({stats.windows_split:,} extra from long documents{skipped}), {stats.tokens:,} tokens, "
        f"{stats.trained_tokens:,} trained, {stats.padding_share:.1%} padding",
    )
    resumed = (
        f" (resumed from {outcome.resumed_from}, step {outcome.resumed_at_step})"
        if outcome.resumed_from
        else ""
    )
    table.add_row(
        "training",
        f"{outcome.steps} steps{resumed} in {outcome.seconds:.1f}s, {outcome.tokens_per_second:,.0f} "
        f"tokens/s, final loss {number(outcome.final_loss)}",
    )
    if outcome.precision:
        table.add_row("precision", outcome.precision)
    table.add_row("log", str(result.run_dir / "train.log"))
    table.add_row(
        "lora", f"r={outcome.lora.r} alpha={outcome.lora.alpha:g} on {','.join(outcome.target_modules)}"
    )
    for label, value in result.scores.items():
        table.add_row("eval", f"{label}: nll {value:.4f} ({result.eval_setting})")
    if result.retention is not None:
        from loraledger.cli.render_retention import trace_lines

        for key, line in trace_lines(result.retention.trace()):
            table.add_row(key, line)
    if result.regressions:
        from loraledger.suites import advice

        verdict = "[yellow]forced past[/]" if result.promoted else "[bold red]held back[/]"
        threshold = f"{len(result.regressions)} set(s) worse than the parent by more than the threshold"
        table.add_row("gate", f"{verdict}: forgetting on {threshold}")
        version = result.version
        for line in advice(version.name, version.ref, result.regressions, promoted=result.promoted):
            table.add_row("", line)
    else:
        if result.version.parent and not result.gated and result.retention is None:
            table.add_row(
                "gate",
                f"[yellow]not checked[/] (--no-eval): `adapters eval {result.version.ref}` scores it, "
                f"`adapters evals {result.version.name}` shows what it forgot",
            )
        if result.version.is_current:
            table.add_row("current", f"{result.version.name}@current -> {result.version.ref}")
    return table

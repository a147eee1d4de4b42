"""``adapters demo``: the continual fine-tuning story on the shipped data, in a temporary home.

The built-in base (pre-trained on Python documentation) gets an adapter for license texts:

1. general text (held-out Python docs) joins the adapter's eval suite as a retention set;
2. update 1 (permissive licenses), trained gently: it learns the domain and goes live;
3. update 2 (copyleft licenses), trained hard: it learns more but forgets general text, and the gate
   keeps ``current`` on update 1;
4. update 2 again, replaying update 1's data and general text beside the new data: it forgets much
   less, passes the gate and goes live;
5. update 2 again from update 1, with a 5% retention budget and no replay: the raw update is held
   back and the strongest weaker version of it within the budget goes live, found without retraining
   (workflows/retention.py); its search cost is shown next to the replay retraining's;

then the registry, the lineage, the score matrix with the forgetting metrics, and a report.
"""

import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from loraledger.cli.output import err, out, stage
from loraledger.schemas.specs import LoraSpec, Recipe, RetentionSpec, TrainSpec
from loraledger.settings import Settings

if TYPE_CHECKING:
    from loraledger.registry.forgetting import Change, ScoreMatrix
    from loraledger.training import TrainResult

NAME = "licenses"
# Measured on builtin:tiny (figures in docs/evaluation.md): the gentle first update moves general text by
# under 2%; the hard one (a constant 1e-2 learning rate) by 10-11% against its parent, over the 5%
# gate; the same hard update with 40% of its rows replayed (from update 1 and general text) by 2-3.5%,
# while learning update 2 as well. LoRA on every linear layer: more capacity to learn, and to forget.
LORA = LoraSpec(target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
GENTLE = TrainSpec(learning_rate=1e-3, epochs=0.5, max_length=128, batch_tokens=1024)
HARD = TrainSpec(learning_rate=1e-2, scheduler="constant", epochs=1, max_length=128, batch_tokens=1024)
REPLAY = 0.4
BUDGET = 0.05


@dataclass(frozen=True)
class Step:
    title: str
    stem: str
    training: TrainSpec
    replay_general: bool = False
    parent: str | None = None
    max_forgetting: float | None = None


STEPS = [
    Step("update 1: permissive licenses, trained gently", "update-1", GENTLE),
    Step("update 2: copyleft licenses, trained hard", "update-2", HARD),
    Step(
        f"update 2 again, {REPLAY:.0%} of the rows replayed from update 1 and general text",
        "update-2",
        HARD.model_copy(update={"replay": REPLAY}),
        replay_general=True,
    ),
    Step(
        f"update 2 again from update 1, retention budget {BUDGET:.0%}, no replay",
        "update-2",
        HARD,
        parent=f"{NAME}@1",
        max_forgetting=BUDGET,
    ),
]


def samples_dir() -> Path:
    from loraledger.trainer import builtin

    return builtin.SAMPLES_DIR


def run_demo(settings: Settings, *, home: Path | None, quiet: bool) -> Path:
    with one_thread():
        return _run_demo(settings, home=home, quiet=quiet)


@contextmanager
def one_thread() -> Iterator[None]:
    """Run torch on one thread: the built-in models are so small that a second thread only adds
    synchronisation (measured on a busy two-core machine: 2,417 tokens/s on one thread, 566 on two)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _run_demo(settings: Settings, *, home: Path | None, quiet: bool) -> Path:
    from loraledger.cli.matrix import matrix_view
    from loraledger.cli.output import warn
    from loraledger.cli.progress import BuildBar, TrainBar, bars
    from loraledger.cli.render import lineage_tree, train_summary, versions_table
    from loraledger.ledger import Ledger
    from loraledger.training import Hooks, TrainResult

    started = time.perf_counter()
    samples = samples_dir()
    home = home or Path(tempfile.mkdtemp(prefix="adapters-demo-"))
    ledger = Ledger(
        replace(
            settings,
            home=home,
            db_url=f"sqlite:///{home / 'registry.db'}",
            store_url=str(home / "artifacts"),
        )
    )
    err().print(f"[bold]demo home:[/] {home}  (built-in models cached in {ledger.settings.cache_dir})")

    out().rule("the eval suite")
    general = samples / "general" / "retention-eval.jsonl"
    entry = ledger.add_to_suite(NAME, general, label="general text")
    out().print(
        f"{NAME}: retention set {entry.label!r} ({entry.dataset.rows} held-out Python documentation "
        f"topics); every version is scored on it, and a version more than "
        f"{ledger.suite(NAME).threshold:.0%} worse on it than its parent does not go live"
    )

    results: list[TrainResult] = []
    for number, step in enumerate(STEPS, start=1):
        out().rule(f"{number}/{len(STEPS)} {step.title}")
        with bars(enabled=not quiet) as progress:
            hooks = Hooks(warn=warn)
            if progress is not None:
                hooks.stage = stage
                hooks.build_progress = BuildBar(progress, "pre-training builtin:tiny (first use only)")
                hooks.train_progress = TrainBar(progress, f"training {NAME}")
            result = ledger.train(
                NAME,
                samples / "legal" / f"{step.stem}.jsonl",
                eval=samples / "legal" / f"{step.stem}-eval.jsonl",
                base="builtin:tiny",
                replay_data=[samples / "general" / "pretrain.jsonl"] if step.replay_general else [],
                recipe=Recipe(
                    lora=LORA,
                    training=step.training,
                    retention=RetentionSpec(max_forgetting=step.max_forgetting),
                ),
                parent=step.parent,
                progress=hooks,
            )
        results.append(result)
        out().print(train_summary(result))

    out().rule("what happened")
    view = ledger.forgetting(NAME)
    for line in story(view.matrix, results):
        out().print(line)

    out().rule("the registry")
    out().print(versions_table(ledger.versions(NAME)))
    out().print(lineage_tree(NAME, ledger.lineage(NAME)))
    out().print(matrix_view(view))
    page = ledger.report(NAME, home / "report.html")
    plots = ledger.report(NAME, home / "report.png")
    out().print(
        f"\nregistry:  {home / 'registry.db'}\nartifacts: {home / 'artifacts'}\n"
        f"report:    {page}\nplots:     {plots}\n"
        f"explore:   adapters --home {home} evals {NAME} | show {NAME}@2 | history {NAME} | lineage {NAME}\n"
        f"demo took {time.perf_counter() - started:.0f}s"
    )
    return home


def story(matrix: "ScoreMatrix", results: list["TrainResult"]) -> list[str]:
    """The outcome in words, from the recorded numbers (whatever they turned out to be on this machine)."""
    general = next(s.digest for s in matrix.sets if s.role == "retention")
    [base] = matrix.bases.values()
    lines = [f"base model: general text NLL {base[general]:.4f}"]
    forgetting: dict[int, float] = {}
    for result in results:
        if result.retention is not None and result.retention.searched:
            lines.append(retention_story(result, results))
            continue
        row = matrix.row(result.version.number)
        own = next((s for s in matrix.sets if s.digest in row.version.learned), None)  # its eval split
        learned = ""
        if own is not None and own.digest in row.cells:
            own_cell = row.cells[own.digest]
            reference = own_cell.vs_parent or own_cell.vs_base
            if reference is not None:
                learned = (
                    f"{own.label} {reference.before:.4f} -> {own_cell.nll:.4f} ({reference.relative:+.1%}); "
                )
        cell = row.cells.get(general)
        if cell is None:
            continue
        change = cell.vs_parent or cell.vs_base
        against = f"v{row.version.parent}" if cell.vs_parent else "the base"
        if change is not None:
            forgetting[row.version.number] = change.relative
        verdict = "went live" if result.promoted else "[bold red]held back by the gate[/]"
        lines.append(
            f"{result.version.ref}: {learned}general text {cell.nll:.4f} "
            f"({percent(change)} against {against}) -> {verdict}"
        )
    if {2, 3} <= set(forgetting):
        lines.append(
            f"replaying general text cut the forgetting of update 2 from {forgetting[2]:+.1%} to "
            f"{forgetting[3]:+.1%} on general text"
        )
    return lines


def percent(change: "Change | None") -> str:
    return "-" if change is None else f"{change.relative:+.1%}"


def retention_story(result: "TrainResult", results: list["TrainResult"]) -> str:
    """The budgeted update in words: what was chosen, what it forgot and kept, and what it cost next
    to the replay remedy (the retraining of step 4)."""
    outcome = result.retention
    assert outcome is not None
    chosen = outcome.chosen
    replay = next((r for r in results if r.version.training.get("replay_rows")), None)
    replay_cost = f"; replay retraining took {replay.outcome.seconds:.0f}s" if replay else ""
    if chosen is None:
        return f"{outcome.raw_ref}: [bold red]no candidate within the {outcome.budget:.0%} budget[/]"
    general = chosen.forgetting.get("general text", chosen.worst)
    verdict = "went live" if result.promoted else "[bold red]held back[/]"
    return (
        f"{result.version.ref}: {outcome.raw_ref} (held back) at strength {chosen.alpha:g}, general text "
        f"{general:+.1%} against {outcome.reference}, {chosen.gain_share or 0:.0%} of its gain on update 2 "
        f"kept -> {verdict} (budget {outcome.budget:.0%}; search {outcome.search_seconds:.0f}s over "
        f"{len(outcome.candidates) - 1} candidates, no retraining{replay_cost})"
    )

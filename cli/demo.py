"""``adapters demo``: the whole continual fine-tuning story on the shipped data, in a temporary home.

Two legal-domain updates of the built-in base, each scored on its own eval split and on general text
the base was pre-trained beside (but never on); then the list, the lineage and where the files are.
"""

import tempfile
from dataclasses import replace
from pathlib import Path

from loraledger.cli.output import err, out
from loraledger.cli.settings import Settings


def samples_dir() -> Path:
    from loraledger.trainer import builtin

    return builtin.SAMPLES_DIR


def run_demo(settings: Settings, *, home: Path | None, quiet: bool) -> Path:
    from loraledger.cli.output import warn
    from loraledger.cli.progress import BuildBar, TrainBar, bars
    from loraledger.cli.render import lineage_tree, train_summary, versions_table
    from loraledger.cli.suites import add_suite_file
    from loraledger.cli.update import Hooks, UpdateRequest, run_update
    from loraledger.schemas.specs import Recipe, TrainSpec

    samples = samples_dir()
    home = home or Path(tempfile.mkdtemp(prefix="adapters-demo-"))
    demo = replace(
        settings,
        home=home,
        db_url=f"sqlite:///{home / 'registry.db'}",
        store_url=str(home / "artifacts"),
    )
    registry = demo.open_registry()
    name = "licenses"
    err().print(f"[bold]demo home:[/] {home}  (built-in models cached in {demo.cache_dir})")

    add_suite_file(
        registry, name, samples / "general" / "retention-eval.jsonl", role="retention", label="general text"
    )
    recipe = Recipe(training=TrainSpec(batch_tokens=1024, max_length=256, learning_rate=1e-3))
    updates = [
        ("update 1: permissive licenses", "update-1"),
        ("update 2: copyleft licenses", "update-2"),
    ]
    for title, stem in updates:
        out().rule(title)
        request = UpdateRequest(
            name=name,
            base="builtin:tiny",
            data=[samples / "legal" / f"{stem}.jsonl"],
            eval_files=[samples / "legal" / f"{stem}-eval.jsonl"],
            recipe=recipe,
        )
        with bars(enabled=not quiet) as progress:
            hooks = Hooks(warn=warn)
            if progress is not None:
                hooks.build_progress = BuildBar(progress, "pre-training builtin:tiny (first use only)")
                hooks.train_progress = TrainBar(progress, f"training {name}")
            result = run_update(demo, request, hooks)
        out().print(train_summary(result))

    out().rule("the registry")
    out().print(versions_table(registry.versions(name)))
    out().print(lineage_tree(name, registry.lineage(name)))
    out().print(
        f"\nregistry: {home / 'registry.db'}\nartifacts: {home / 'artifacts'}\n"
        f"explore: adapters --home {home} show {name}@2 | evals {name} | history {name}"
    )
    return home

"""``adapters train``: one continual update. Flags are generated from the spec fields, so their help is
the fields' own documentation and a recipe file and the flags can never drift apart."""

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from loraledger.cli.options import json_option, note_option, pass_ledger, quiet_option
from loraledger.cli.output import out, stage, warn

if TYPE_CHECKING:
    from loraledger.ledger import Ledger
    from loraledger.schemas.specs import LoraSpec, TrainSpec

# Field -> flag names where the plain field name would read badly on a command line.
FLAG_NAMES = {
    "r": ["--rank", "-r"],
    "alpha": ["--alpha"],
    "dropout": ["--dropout"],
    "target_modules": ["--target-modules"],
    "learning_rate": ["--learning-rate", "--lr"],
}


def _spec_options(model: "type[LoraSpec] | type[TrainSpec]", prefix: str) -> list[Any]:
    options = []
    for name, info in model.model_fields.items():
        flags = FLAG_NAMES.get(name, ["--" + name.replace("_", "-")])
        default = info.default
        shown = f" [default: {','.join(default) if isinstance(default, list) else default}]"
        help_text = (info.description or "") + ("" if default is None else shown)
        dest = f"{prefix}__{name}"
        if info.annotation is bool:
            positive = flags[0]
            options.append(
                click.option(f"{positive}/--no-{positive[2:]}", dest, default=None, help=help_text)
            )
            continue
        kwargs: dict[str, Any] = {"default": None, "help": help_text}
        annotation = str(info.annotation)
        if "Literal" in annotation:
            kwargs["type"] = click.Choice(list(info.annotation.__args__))  # type: ignore[union-attr]
        elif info.annotation is int:
            kwargs["type"] = int
        elif info.annotation is float:
            kwargs["type"] = float
        elif "list" in annotation:
            kwargs["metavar"] = "A,B"
        options.append(click.option(*flags, dest, **kwargs))
    return options


def flags_markdown() -> str:
    """The table of recipe flags on docs/training.md, generated from the spec fields (a test keeps it
    current)."""
    from loraledger.schemas.specs import LoraSpec, TrainSpec

    lines = ["| flag | recipe key | default | meaning |", "| --- | --- | --- | --- |"]
    for section, model in (("lora", LoraSpec), ("training", TrainSpec)):
        for name, info in model.model_fields.items():
            flags = FLAG_NAMES.get(name, ["--" + name.replace("_", "-")])
            if info.annotation is bool:
                flags = [f"{flags[0]}/--no-{flags[0][2:]}"]
            default = info.default
            shown = ",".join(default) if isinstance(default, list) else default
            lines.append(
                f"| {', '.join(f'`{flag}`' for flag in flags)} | `{section}.{name}` | "
                f"{'-' if default is None else f'`{shown}`'} | {info.description} |"
            )
    return "\n".join(lines) + "\n"


def spec_options(function: Any) -> Any:
    from loraledger.schemas.specs import LoraSpec, TrainSpec

    for option in reversed(_spec_options(LoraSpec, "lora") + _spec_options(TrainSpec, "training")):
        function = option(function)
    return function


class SpecFlagsCommand(click.Command):
    """A command whose recipe flags (from the pydantic spec fields) are built on first use rather
    than at import: `adapters --help` and `adapters list` then never import pydantic's specs. They
    go right after --fresh, where the command's own options place them."""

    _own: list[click.Parameter]
    _complete = False

    @property
    def params(self) -> list[click.Parameter]:
        if not self._complete:
            self._complete = True
            holder = spec_options(lambda: None)
            flags = list(reversed(holder.__click_params__))
            names = [param.name for param in self._own]
            at = names.index("fresh") + 1 if "fresh" in names else len(self._own)
            self._own[at:at] = flags
        return self._own

    @params.setter
    def params(self, value: list[click.Parameter]) -> None:
        self._own = value


def build_recipe(config: Path | None, overrides: dict[str, Any]) -> tuple[Any, set[str]]:
    """Recipe file first, flags on top; returns (validated Recipe, LoRA fields set explicitly)."""
    from loraledger.recipes import build_recipe as build
    from loraledger.recipes import load_recipe

    flagged: dict[tuple[str, str], Any] = {}
    for key, value in overrides.items():
        if value is None:
            continue
        section, field = key.split("__", 1)
        if field == "target_modules":
            value = [item.strip() for item in value.split(",") if item.strip()]
        flagged[(section, field)] = value
    return build(
        load_recipe(config) if config else {},
        flagged,
        source=str(config) if config else None,
        name_of=lambda _section, field: FLAG_NAMES.get(field, ["--" + field.replace("_", "-")])[0],
    )


@click.command(cls=SpecFlagsCommand)
@click.argument("name")
@click.option(
    "--base",
    metavar="MODEL",
    help="Base model: builtin:tiny, a local folder, a .gguf file (or a folder holding one) or a Hub id "
    "(new adapters).",
)
@click.option("--revision", help="Hub revision (branch, tag or commit) of the base.")
@click.option(
    "--data",
    "data",
    multiple=True,
    required=True,
    type=click.Path(path_type=Path),
    help="Training data: JSONL, JSON, CSV, Parquet or text file, or a folder of them. Repeatable.",
)
@click.option(
    "--eval",
    "eval_files",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Held-out split of this update; joins the adapter's eval suite. Repeatable.",
)
@click.option(
    "--replay-data",
    "replay_files",
    multiple=True,
    type=click.Path(path_type=Path),
    help="More data for --replay to draw from besides the lineage's training data, e.g. general text "
    "like the base model's. Repeatable.",
)
@click.option(
    "--config", type=click.Path(path_type=Path), help="Recipe YAML/JSON (schemas/json/recipe.schema.json)."
)
@click.option("--from", "parent", metavar="REF", help="Continue from REF instead of NAME's current version.")
@click.option("--fresh", is_flag=True, help="Start a new LoRA instead of continuing the current version.")
@click.option(
    "--resume", is_flag=True, help="Continue an interrupted run of the same command from its checkpoint."
)
@click.option("--num-processes", default=1, show_default=True, help="Data-parallel processes (accelerate).")
@click.option("--no-eval", is_flag=True, help="Skip scoring the new version on the eval suite.")
@click.option(
    "--force", is_flag=True, help="Make the new version current even if the forgetting gate objects."
)
@click.option(
    "--max-forgetting",
    "retention__max_forgetting",
    metavar="PCT",
    help="Retention budget (5% or 0.05): an update forgetting more on any suite set is searched down "
    "to one within it, weaker first, then retrained with replay (recipe key retention.max_forgetting; "
    "docs/retention.md). Exits 6 when nothing meets it.",
)
@note_option
@quiet_option
@json_option
@click.option("--allow-pickle", is_flag=True, help="Allow loading pickled (.bin) base weights.")
@click.option("--trust-remote-code", is_flag=True, help="Run modelling code shipped with the base model.")
@pass_ledger
def train(
    ledger: "Ledger",
    /,
    name: str,
    base: str | None,
    revision: str | None,
    data: tuple[Path, ...],
    eval_files: tuple[Path, ...],
    replay_files: tuple[Path, ...],
    config: Path | None,
    parent: str | None,
    fresh: bool,
    resume: bool,
    num_processes: int,
    no_eval: bool,
    force: bool,
    note: str | None,
    quiet: bool,
    as_json: bool,
    allow_pickle: bool,
    trust_remote_code: bool,
    **overrides: Any,
) -> None:
    """Train the next LoRA update of NAME on new data and register it.

    A new NAME needs --base. An existing NAME continues from its current version (its weights
    trainable, its base and LoRA shape kept). The output ends with the new ref, e.g. NAME@2.
    """
    require_training_extra()
    from loraledger.cli.progress import BuildBar, TrainBar, bars
    from loraledger.training import Hooks

    recipe, _explicit = build_recipe(config, overrides)  # the recipe remembers which fields were set
    with bars(enabled=not quiet) as progress:
        hooks = Hooks(warn=warn)
        if progress is not None:
            hooks.stage = stage
            hooks.build_progress = BuildBar(progress, "pre-training base")
            hooks.train_progress = TrainBar(progress, f"training {name}")
        result = ledger.train(
            name,
            list(data),
            recipe=recipe,
            eval=list(eval_files),
            base=base,
            revision=revision,
            parent=parent,
            fresh=fresh,
            replay_data=list(replay_files),
            run_eval=not no_eval,
            force=force,
            resume=resume,
            num_processes=num_processes,
            note=note,
            allow_pickle=allow_pickle,
            trust_remote_code=trust_remote_code,
            progress=hooks,
        )
    if as_json:
        from loraledger.cli.output import print_json
        from loraledger.cli.render import version_json

        print_json(
            {
                "version": version_json(result.version, full=True),
                "promoted": result.promoted,
                "gated": result.gated,
                "regressions": [r.__dict__ | {"change": r.change} for r in result.regressions],
                "training": result.outcome.model_dump(mode="json"),
                "retention": result.retention.trace() if result.retention else None,
            }
        )
        return
    from loraledger.cli.render import train_summary

    out().print(train_summary(result))
    out().print(result.version.ref)


def require_training_extra() -> None:
    """The registry installs without torch; commands that touch models say how to get it."""
    import importlib.util

    from loraledger.schemas.errors import LedgerError

    missing = [name for name in ("torch", "transformers", "peft") if importlib.util.find_spec(name) is None]
    if missing:
        raise LedgerError(
            f"this command needs {', '.join(missing)}, which are not installed: "
            "pip install 'loraledger[train]'"
        )


COMMANDS = [train]

"""Combining and publishing: stack, import, merge, export, push."""

from pathlib import Path

import click

from loraledger.cli.output import err, out, print_json, warn
from loraledger.settings import Settings

json_option = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
METHODS = ["cat", "linear", "svd", "ties", "dare_ties"]
DTYPES = ["fp32", "bf16", "fp16"]


def _stage(message: str) -> None:
    err().print(f"[dim]{message}[/]")


def _weights(text: str | None) -> list[float] | None:
    from loraledger.schemas.errors import InvalidInput

    if text is None:
        return None
    try:
        return [float(item) for item in text.split(",")]
    except ValueError:
        raise InvalidInput(
            f"invalid --weights {text!r}: give numbers separated by commas, e.g. 1,0.5"
        ) from None


@click.command()
@click.argument("name")
@click.argument("refs", nargs=-1, required=True)
@click.option("--weights", metavar="W1,W2", help="One weight per input, e.g. 1,0.5 [default: all 1].")
@click.option(
    "--method",
    type=click.Choice(METHODS),
    default="cat",
    show_default=True,
    help="cat: exact (rank = sum of ranks), recorded as kind stack. linear, svd, ties, dare_ties mix the "
    "updates (approximations; linear, ties and dare_ties need equal ranks), recorded as kind merge.",
)
@click.option("--density", type=float, help="Share of entries kept by ties / dare_ties [default: 0.5].")
@click.option("--promote", is_flag=True, help="Make the new version current even if NAME already has one.")
@click.option("--note", help="Free text recorded on the version.")
@json_option
@click.pass_obj
def stack(
    settings: Settings,
    name: str,
    refs: tuple[str, ...],
    weights: str | None,
    method: str,
    density: float | None,
    promote: bool,
    note: str | None,
    as_json: bool,
) -> None:
    """Combine versions REFS (same base) into a new version of NAME, with peft's add_weighted_adapter.

    Example: adapters stack legal-style legal@2 style@1 --weights 1,0.5
    """
    from loraledger.combining import run_stack

    result = run_stack(
        settings,
        name,
        list(refs),
        weights=_weights(weights),
        method=method,
        density=density,
        promote=promote,
        note=note,
        stage=_stage,
    )
    if as_json:
        from loraledger.cli.render import version_json

        print_json({"version": version_json(result.version, full=True), "promoted": result.promoted})
        return
    diff = result.details.get("max_logit_diff")
    check = f"; max logit difference from the inputs applied together {diff:.2g}" if diff is not None else ""
    err().print(f"{result.version.kind} of {', '.join(refs)}, rank {result.version.lora.get('r')}{check}")
    if not result.promoted:
        err().print(f"current not moved; make it current with `adapters promote {result.version.ref}`")
    out().print(result.version.ref)


@click.command("import")
@click.argument("name")
@click.argument("source", metavar="PATH_OR_REPO")
@click.option("--base", metavar="MODEL", help="Base model, instead of the one the adapter config names.")
@click.option("--base-revision", help="Hub revision of the base.")
@click.option("--revision", help="Hub revision (branch, tag or commit) of PATH_OR_REPO.")
@click.option("--promote", is_flag=True, help="Make the new version current even if NAME already has one.")
@click.option("--note", help="Free text recorded on the version.")
@json_option
@click.pass_obj
def import_adapter(
    settings: Settings,
    name: str,
    source: str,
    base: str | None,
    base_revision: str | None,
    revision: str | None,
    promote: bool,
    note: str | None,
    as_json: bool,
) -> None:
    """Register an existing PEFT LoRA adapter (a folder or a Hub repo, safetensors only) as a version of
    NAME. Its base is checked: it must load, and match NAME's other versions."""
    from loraledger.combining import run_import

    result = run_import(
        settings,
        name,
        source,
        base=base,
        base_revision=base_revision,
        revision=revision,
        promote=promote,
        note=note,
        stage=_stage,
    )
    for message in result.warnings:
        warn(message)
    if as_json:
        from loraledger.cli.render import version_json

        print_json({"version": version_json(result.version, full=True), "promoted": result.promoted})
        return
    if not result.promoted:
        err().print(f"current not moved; make it current with `adapters promote {result.version.ref}`")
    out().print(result.version.ref)


@click.command()
@click.argument("ref")
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder to write the merged model to (new or empty).",
)
@click.option(
    "--dtype",
    type=click.Choice(DTYPES),
    default="fp32",
    show_default=True,
    help="Precision of the saved weights.",
)
@json_option
@click.pass_obj
def merge(settings: Settings, ref: str, out_dir: Path, dtype: str, as_json: bool) -> None:
    """Merge REF into its base (loaded at full precision) and save model and tokenizer; the merged
    logits are checked against base + adapter and the result is recorded on REF."""
    from loraledger.publishing import run_merge

    result = run_merge(settings, ref, out_dir, dtype=dtype, stage=_stage)
    if as_json:
        print_json({"ref": result.version.ref, **result.details})
        return
    details = result.details
    err().print(
        f"max logit difference from base + adapter: {details['max_logit_diff']:.2g} (fp32), "
        f"{details['saved_max_logit_diff']:.2g} as saved ({dtype})"
    )
    out().print(details["path"])


@click.command()
@click.argument("ref")
# A str, not a Path: click turns "" into Path("") == Path("."), hiding an empty argument.
@click.argument("dest", type=click.Path(file_okay=False))
@click.option(
    "--format",
    "format_",
    type=click.Choice(["peft", "vllm", "lorax"]),
    default="peft",
    show_default=True,
    help="peft: the adapter folder; vllm, lorax: also the server's settings as JSON.",
)
@click.option("--force", is_flag=True, help="Replace an earlier export of the same version in DEST.")
@json_option
@click.pass_obj
def export(settings: Settings, ref: str, dest: str, format_: str, force: bool, as_json: bool) -> None:
    """Write REF as a PEFT folder DEST/NAME-vN naming its canonical base, for vLLM or LoRAX."""
    from loraledger.publishing import run_export

    result = run_export(settings, ref, dest, format=format_, replace=force)
    outcome = result.outcome
    if as_json:
        print_json(
            {
                "ref": result.version.ref,
                "path": str(outcome.adapter_dir),
                **outcome.record(),
                "serve": outcome.serve_hint,
            }
        )
        return
    for message in outcome.warnings:
        warn(message)
    for path in outcome.extra_files:
        err().print(f"wrote {path}")
    if outcome.serve_hint:
        err().print(f"serve it: {outcome.serve_hint}", soft_wrap=True)
    out().print(str(outcome.adapter_dir))


@click.command()
@click.argument("ref")
@click.option(
    "--repo", "repo_id", required=True, metavar="OWNER/NAME", help="Hub repository (created if new)."
)
@click.option(
    "--merged/--adapter",
    default=False,
    show_default=True,
    help="Push the model with the adapter merged in, or the adapter alone.",
)
@click.option("--private", is_flag=True, help="Create the repository private.")
@click.option(
    "--dtype",
    type=click.Choice(DTYPES),
    default="fp32",
    show_default=True,
    help="Precision of merged weights.",
)
@json_option
@click.pass_obj
def push(
    settings: Settings, ref: str, repo_id: str, merged: bool, private: bool, dtype: str, as_json: bool
) -> None:
    """Publish REF to the Hugging Face Hub: one commit tagged vN, with a model card from the registry.

    The token comes from `hf auth login` or HF_TOKEN and is never stored.
    """
    from loraledger.publishing import run_push

    result = run_push(settings, ref, repo_id, merged=merged, private=private, dtype=dtype, stage=_stage)
    if as_json:
        print_json({"ref": result.version.ref, "url": result.outcome.repo_url, **result.details})
        return
    outcome = result.outcome
    err().print(f"commit {outcome.commit_id} ({len(outcome.files)} files) in {outcome.seconds:.1f}s")
    out().print(f"{outcome.repo_url}@{outcome.tag}")


COMMANDS = [stack, import_adapter, merge, export, push]

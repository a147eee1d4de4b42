"""Combining and publishing: stack, import, merge, export, push."""

from pathlib import Path
from typing import TYPE_CHECKING

import click

from loraledger.cli.options import dtype_option, json_option, note_option, pass_ledger, promote_option
from loraledger.cli.output import err, note, out, print_json, stage, warn

if TYPE_CHECKING:
    from loraledger.ledger import Ledger

METHODS = ["cat", "linear", "svd", "ties", "dare_ties"]


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


def _destination(dest: str | None, out_dir: str | None) -> str:
    """``--out DIR``, or the older positional DEST: one of them, or both naming the same folder."""
    from loraledger.errors import InvalidInput

    if dest is not None and out_dir is not None and dest != out_dir:
        raise InvalidInput(f"two destinations: {dest} and --out {out_dir}; pass one (--out DIR)")
    folder = out_dir if out_dir is not None else dest
    if folder is None:
        raise InvalidInput("where to? pass --out DIR (the export is written as DIR/NAME-vN)")
    return folder


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
@promote_option
@note_option
@json_option
@pass_ledger
def stack(
    ledger: "Ledger",
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
    result = ledger.stack(
        name,
        list(refs),
        weights=_weights(weights),
        method=method,
        density=density,
        promote=promote,
        note=note,
        stage=stage,
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
@promote_option
@note_option
@json_option
@pass_ledger
def import_adapter(
    ledger: "Ledger",
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
    result = ledger.import_adapter(
        name,
        source,
        base=base,
        base_revision=base_revision,
        revision=revision,
        promote=promote,
        note=note,
        stage=stage,
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
@dtype_option("Precision of the saved weights.")
@json_option
@pass_ledger
def merge(ledger: "Ledger", ref: str, out_dir: Path, dtype: str, as_json: bool) -> None:
    """Merge REF into its base (loaded at full precision) and save model and tokenizer; the merged
    logits are checked against base + adapter and the result is recorded on REF."""
    result = ledger.merge(ref, out_dir, dtype=dtype, stage=stage)
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
# Strings, not Paths: click turns "" into Path("") == Path("."), hiding an empty argument.
@click.argument("dest", required=False, type=click.Path(file_okay=False))
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    help="Folder to write the export into, as DIR/NAME-vN (DEST, given after REF, is the same).",
)
@click.option(
    "--format",
    "format_",
    type=click.Choice(["peft", "vllm", "lorax"]),
    default="peft",
    show_default=True,
    help="peft: the adapter folder; vllm, lorax: also the server's settings as JSON.",
)
@click.option("--force", is_flag=True, help="Replace an earlier export of the same version in the folder.")
@json_option
@pass_ledger
def export(
    ledger: "Ledger",
    ref: str,
    dest: str | None,
    out_dir: str | None,
    format_: str,
    force: bool,
    as_json: bool,
) -> None:
    """Write REF as a PEFT folder DIR/NAME-vN naming its canonical base, for vLLM or LoRAX.

    The destination is given with --out DIR, as for `adapters merge` and `adapters report`;
    `adapters export REF DIR` (the folder after REF) is kept as an alias of it.
    """
    folder = _destination(dest, out_dir)
    result = ledger.export(ref, folder, format=format_, replace=force)
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
        note(f"wrote {path}")
    if outcome.serve_hint:
        err().print(f"serve it: {outcome.serve_hint}", soft_wrap=True, markup=False)
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
@dtype_option("Precision of merged weights.")
@json_option
@pass_ledger
def push(
    ledger: "Ledger", ref: str, repo_id: str, merged: bool, private: bool, dtype: str, as_json: bool
) -> None:
    """Publish REF to the Hugging Face Hub: one commit tagged vN, with a model card from the registry.

    The token comes from `hf auth login` or HF_TOKEN and is never stored.
    """
    result = ledger.push(ref, repo_id, merged=merged, private=private, dtype=dtype, stage=stage)
    if as_json:
        print_json({"ref": result.version.ref, "url": result.outcome.repo_url, **result.details})
        return
    outcome = result.outcome
    err().print(f"commit {outcome.commit_id} ({len(outcome.files)} files) in {outcome.seconds:.1f}s")
    out().print(f"{outcome.repo_url}@{outcome.tag}")


COMMANDS = [stack, import_adapter, merge, export, push]

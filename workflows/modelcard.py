"""The model card (README.md) of a pushed version, from what the registry recorded about it.

Metadata the Hub understands goes where it looks for it (``base_model`` + ``base_model_relation``, which
place the repo in the base's model tree; ``library_name``; ``model-index`` for the eval scores); what
only loraledger knows (fingerprints, lineage, dataset digests) goes under a ``loraledger`` key and in
the text. ``datasets`` is left out: it takes Hub dataset ids, and ours are content digests.

Nothing about the machine goes in: no local paths (data files are named by their file name only), no
user or host names, and never a token.

The scores on the card are those of one scoring setting (the one of the version's most recent score),
the version's and the base model's alike, and the card says which.
"""

import re
from pathlib import PurePath
from typing import Any, Literal

from loraledger.registry import Registry
from loraledger.registry.forgetting import latest_scores, newest_setting
from loraledger.schemas.records import BaseModelRecord, DatasetUse, EvalResult, VersionRecord

Relation = Literal["adapter", "merge"]
# A local path or URL inside free text (an eval label names its source file): cut to its last part.
PATH_IN_TEXT = re.compile(r"(?:\b[a-z][a-z0-9+.-]*://|(?<![\w.-])[~/])[^\s()]*")


def plain(text: str) -> str:
    """``text`` with local paths and URLs reduced to their file names."""
    return PATH_IN_TEXT.sub(lambda match: match.group(0).rstrip("/").rsplit("/", 1)[-1], text)


# Characters that would end a table cell, start a code span or link, or be read as HTML by the Hub's
# renderer; line breaks (and any control character) would start a new line of the card.
_MARKDOWN_SPECIAL = str.maketrans({"\\": "\\\\", "|": "\\|", "`": "\\`", "[": "\\[", "]": "\\]"})
_HTML_SPECIAL = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


def markdown_cell(text: str) -> str:
    """User-provided ``text`` (a file name, a label, a note) made inert inside a Markdown table cell or
    list item: one line, no cell break, no code span, link or HTML of its own."""
    return _CONTROL.sub(" ", text).translate(_MARKDOWN_SPECIAL).translate(_HTML_SPECIAL)


def is_hub_id(model_id: str) -> bool:
    """Whether a recorded base id names a Hub repository (not ``builtin:...``, not a local folder)."""
    if model_id.startswith("builtin:") or PurePath(model_id).is_absolute() or "\\" in model_id:
        return False
    return model_id.count("/") <= 1 and not model_id.startswith((".", "~"))


def lineage_of(registry: Registry, version: VersionRecord) -> list[VersionRecord]:
    """The versions that made this one, oldest first: its chain of parents and, for stacks and merges,
    its inputs with their own chains."""
    found: dict[str, VersionRecord] = {}

    def visit(current: VersionRecord) -> None:
        for older in [*reversed(registry.ancestors(current)), current]:
            for item in older.inputs:
                if item.ref not in found:
                    visit(registry.resolve(item.ref))
            found.setdefault(older.ref, older)

    visit(version)
    return list(found.values())


def build_card(
    registry: Registry,
    version: VersionRecord,
    *,
    repo_id: str,
    relation: Relation,
    merge: dict[str, Any] | None = None,
) -> str:
    """README.md text: YAML metadata, then a readable account of the version."""
    from huggingface_hub import EvalResult as HubEvalResult
    from huggingface_hub import ModelCard, ModelCardData

    base = version.base
    hub_base = base.model_id if is_hub_id(base.model_id) else None
    lineage = lineage_of(registry, version)
    uses = [use for item in lineage for use in item.datasets]
    setting = newest_setting(version.evals)
    nll = card_scores(version.evals, setting)
    data = ModelCardData(
        base_model=hub_base,
        library_name="peft" if relation == "adapter" else "transformers",
        pipeline_tag="text-generation",
        tags=["loraledger", "lora", "continual-learning"],
        model_name=f"{version.name}-v{version.number}",
        eval_results=[
            HubEvalResult(
                task_type="text-generation",
                dataset_type=result.dataset_digest,
                dataset_name=plain(result.label or result.dataset_digest),
                metric_type=result.metric,
                metric_value=round(result.value, 6),
            )
            for result in nll
        ]
        or None,
        base_model_relation=relation if hub_base else None,
        loraledger={
            "ref": version.ref,
            "kind": version.kind,
            "artifact": version.artifact_digest,
            "base": _base_json(base),
            "lineage": [_lineage_json(item) for item in lineage],
            "datasets": [_use_json(use) for use in uses],
            **({"eval_setting": setting} if nll else {}),
            **({"merge": merge} if merge else {}),
        },
    )
    body = _body(registry, version, repo_id, relation, lineage, uses, merge, nll, setting)
    return str(ModelCard(f"---\n{data.to_yaml()}\n---\n\n{body}"))


def card_scores(results: list[EvalResult], setting: str | None) -> list[EvalResult]:
    """The NLL and perplexity results of one setting, the latest per (dataset, metric)."""
    latest: dict[tuple[str, str], EvalResult] = {}
    for result in sorted(results, key=lambda r: r.created_at):
        if result.metric in ("nll", "perplexity") and result.setting == setting:
            latest[(result.dataset_digest, result.metric)] = result
    return list(latest.values())


def _base_json(base: BaseModelRecord) -> dict[str, Any]:
    return {
        "model_id": base.model_id
        if not PurePath(base.model_id).is_absolute()
        else PurePath(base.model_id).name,
        "revision": base.revision,
        "config_digest": base.config_digest,
        "weights_digest": base.weights_digest,
        **({"source_format": base.source_format} if base.source_format else {}),
    }


def _lineage_json(version: VersionRecord) -> dict[str, Any]:
    return {
        "ref": version.ref,
        "kind": version.kind,
        "parent": version.parent,
        "inputs": [{"ref": item.ref, "weight": item.weight} for item in version.inputs],
        "artifact": version.artifact_digest,
        "created": version.created_at.isoformat(timespec="seconds"),
    }


def _use_json(use: DatasetUse) -> dict[str, Any]:
    return {
        "version": use.ref,
        "role": use.role,
        "digest": use.dataset.digest,
        "rows": use.rows,
        "file": _file_name(use.dataset.source),
    }


def _file_name(source: str | None) -> str | None:
    return plain(source) if source else None


def _body(
    registry: Registry,
    version: VersionRecord,
    repo_id: str,
    relation: Relation,
    lineage: list[VersionRecord],
    uses: list[DatasetUse],
    merge: dict[str, Any] | None,
    scores: list[EvalResult],
    setting: str | None,
) -> str:
    base = version.base
    base_name = _base_json(base)["model_id"]
    what = (
        f"a LoRA adapter for `{base_name}`"
        if relation == "adapter"
        else f"`{base_name}` with a LoRA adapter merged into its weights"
    )
    lines = [
        f"# {repo_id}",
        "",
        f"Version {version.number} of `{version.name}` ({version.kind}): {what}. Registered, verified and "
        f"published with loraledger; this commit is tagged `v{version.number}`.",
        "",
        "## Use",
        "",
        "```python",
        *_usage(repo_id, version, relation, base_name),
        "```",
    ]
    if base.source_format:
        quantization = base.source_format.removeprefix("GGUF").strip() or "unknown"
        stored = (
            "Its merged weights are those values plus the adapter, saved as safetensors."
            if (relation == "merge")
            else "Load the base the same way (transformers dequantizes a GGUF file on load)."
        )
        lines += [
            "",
            f"The base came from the GGUF file `{base_name}` (quantization {quantization}); loraledger "
            f"dequantized it to fp32 to train on. {stored}",
        ]
    if base.model_id.startswith("builtin:"):
        lines += ["", f"`{base.model_id}` is a small model that loraledger builds offline (`adapters demo`)."]
    lines += [
        "",
        "## Base model",
        "",
        "| id | revision | format | config digest | weights digest |",
        "| --- | --- | --- | --- | --- |",
        f"| `{markdown_cell(base_name)}` | {markdown_cell(base.revision or '-')} "
        f"| {markdown_cell(base.source_format or '-')} "
        f"| `{base.config_digest}` | `{base.weights_digest or '-'}` |",
        "",
        "## Lineage",
        "",
        "| version | kind | from | created | trained on |",
        "| --- | --- | --- | --- | --- |",
    ]
    for item in lineage:
        source = item.parent or ", ".join(f"{i.ref} × {i.weight:g}" for i in item.inputs) or "-"
        trained = ", ".join(f"`{_short(u.dataset.digest)}`" for u in item.datasets if u.role == "train")
        created = item.created_at.date().isoformat()
        lines.append(f"| {item.ref} | {item.kind} | {markdown_cell(source)} | {created} | {trained or '-'} |")
    if uses:
        lines += [
            "",
            "## Data",
            "",
            "| version | role | digest | rows | file |",
            "| --- | --- | --- | --- | --- |",
        ]
        for use in uses:
            file = markdown_cell(_file_name(use.dataset.source) or "-")
            lines.append(f"| {use.ref} | {use.role} | `{use.dataset.digest}` | {use.rows:,} | {file} |")
    lines += _eval_lines(registry, scores, base, setting)
    lines += ["", "## Adapter", ""]
    lines += [f"- {markdown_cell(key)}: {markdown_cell(str(value))}" for key, value in version.lora.items()]
    lines += [
        f"- {markdown_cell(key)}: {markdown_cell(plain(str(value)))}"
        for key, value in version.training.items()
        if value is not None
    ]
    if merge:
        lines += [
            "",
            "## Merge check",
            "",
            f"Merged at full precision, saved as {merge['dtype']}. Largest logit difference from base + "
            f"adapter on a fixed probe batch ({merge['probe']}): {merge['max_logit_diff']:.3g} in fp32, "
            f"{merge['saved_max_logit_diff']:.3g} as saved.",
        ]
    if version.libraries:
        lines += ["", "## Libraries", "", ", ".join(f"{k} {v}" for k, v in version.libraries.items())]
    return "\n".join(lines) + "\n"


def _usage(repo_id: str, version: VersionRecord, relation: Relation, base_name: str) -> list[str]:
    tag = f"v{version.number}"
    if relation == "merge":
        return [
            "from transformers import AutoModelForCausalLM, AutoTokenizer",
            "",
            f'model = AutoModelForCausalLM.from_pretrained("{repo_id}", revision="{tag}")',
            f'tokenizer = AutoTokenizer.from_pretrained("{repo_id}", revision="{tag}")',
        ]
    return [
        "from peft import PeftModel",
        "from transformers import AutoModelForCausalLM",
        "",
        f'base = AutoModelForCausalLM.from_pretrained("{base_name}")'
        if not base_name.lower().endswith(".gguf")
        else f'base = AutoModelForCausalLM.from_pretrained("FOLDER", gguf_file="{base_name}")',
        f'model = PeftModel.from_pretrained(base, "{repo_id}", revision="{tag}")',
    ]


def _eval_lines(
    registry: Registry, evals: list[EvalResult], base: BaseModelRecord, setting: str | None
) -> list[str]:
    scores = [result for result in evals if result.metric == "nll"]
    if not scores or setting is None:
        return []
    on_base = latest_scores(registry.base_evals(base), setting=setting).get(None, {})
    lines = [
        "",
        "## Evaluation",
        "",
        "Mean negative log-likelihood per token (nats; lower is better) on held-out sets. This version "
        f"and the base model were both scored as `{setting}` (base weights format / compute dtype, "
        "scoring window / stride).",
        "",
        "| eval set | digest | this version | base model |",
        "| --- | --- | --- | --- |",
    ]
    for result in scores:
        before = on_base.get(result.dataset_digest)
        label = markdown_cell(plain(result.label or "-"))
        lines.append(
            f"| {label} | `{_short(result.dataset_digest)}` | {result.value:.4f} | "
            f"{'-' if before is None else f'{before:.4f}'} |"
        )
    return lines


def _short(digest: str) -> str:
    return digest.split(":", 1)[-1][:12]

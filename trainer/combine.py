"""Combining adapters of one base into a new adapter, with peft's ``add_weighted_adapter``.

``cat`` is exact: it concatenates the inputs' A and B matrices (rank = the sum of their ranks), so the
result computes sum_i weight_i * B_i A_i * scaling_i, what the inputs do when applied together. The
other methods approximate: ``linear`` mixes A and B separately (cross terms, peft #3004), ``svd``
re-factorises the weighted sum of updates at the largest input rank, ``ties`` and ``dare_ties`` prune
and sign-elect (DARE at random, seeded here). ``linear``, ``ties`` and ``dare_ties`` need equal ranks.

peft gets rsLoRA, DoRA and LoRA-bias inputs wrong (#3761), and fully trained ``modules_to_save``
copies are not combined at all: such inputs are refused.
"""

import json
import math
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from loraledger.schemas.errors import Conflict, InvalidInput
from loraledger.schemas.jobs import BaseSource
from loraledger.trainer import adapterfiles
from loraledger.trainer.merge import describe_probe, load_full_precision, logits, probe_batch
from loraledger.trainer.versions import library_versions

METHODS = ("cat", "linear", "svd", "ties", "dare_ties")
EQUAL_RANK_METHODS = frozenset({"linear", "ties", "dare_ties"})
PRUNING_METHODS = frozenset({"ties", "dare_ties"})
DEFAULT_DENSITY = 0.5
# peft saves the adapter named "default" at the top of the folder (others go to a subfolder); the
# inputs are loaded as in0, in1, ..., so the name is always new (add_weighted_adapter silently does
# nothing when it is not).
COMBINED = "default"
SEED = 0


@dataclass(frozen=True)
class StackOutcome:
    adapter_dir: Path
    method: str
    weights: list[float]
    density: float | None
    lora: dict[str, Any]
    # cat only: the stacked adapter against the inputs applied together, on the probe batch.
    max_logit_diff: float | None
    probe: str | None
    libraries: dict[str, str] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        """What the registry keeps as the version's ``training`` settings."""
        return {
            "method": self.method,
            "weights": self.weights,
            "density": self.density,
            "seed": SEED if self.method == "dare_ties" else None,
            "max_logit_diff": self.max_logit_diff,
            "probe": self.probe,
        }


def check_stackable(
    configs: Sequence[tuple[str, dict[str, Any]]], weights: Sequence[float], method: str
) -> None:
    """Refuse, before any model is loaded, what ``add_weighted_adapter`` cannot do right."""
    if method not in METHODS:
        raise InvalidInput(f"unknown --method {method!r}: use one of {', '.join(METHODS)}")
    if len(configs) < 2:
        raise InvalidInput("stacking needs at least two input adapters")
    if len(weights) != len(configs):
        raise InvalidInput(f"{len(weights)} weights for {len(configs)} inputs: give one weight per input")
    if not all(math.isfinite(weight) for weight in weights):
        raise InvalidInput("weights must be finite numbers")
    for label, config in configs:
        adapterfiles.refuse_special(config, label, "stacking with add_weighted_adapter")
    if method in EQUAL_RANK_METHODS:
        ranks = {label: adapterfiles.max_rank(config) for label, config in configs}
        if len(set(ranks.values())) > 1:
            listed = ", ".join(f"{label} r={rank}" for label, rank in ranks.items())
            raise Conflict(
                f"--method {method} needs inputs of equal rank ({listed}): use --method cat (exact) or svd"
            )


def stack_adapters(
    base: BaseSource,
    inputs: Sequence[tuple[str, Path]],
    weights: Sequence[float],
    output_dir: Path,
    *,
    method: str = "cat",
    density: float | None = None,
) -> StackOutcome:
    """Combine ``inputs`` (label, adapter folder) on ``base`` into one adapter saved in ``output_dir``."""
    from peft import PeftModel
    from peft.tuners.lora import LoraLayer

    from loraledger.trainer.recipe import RECIPE_FILE

    configs = [(label, adapterfiles.read_config(folder)) for label, folder in inputs]
    check_stackable(configs, weights, method)
    if method in PRUNING_METHODS:
        density = DEFAULT_DENSITY if density is None else density
        if not 0 < density <= 1:
            raise InvalidInput(f"--density must be in (0, 1], got {density}")
    elif density is not None:
        raise InvalidInput(f"--density applies to ties and dare_ties, not to --method {method}")

    names = [f"in{index}" for index in range(len(inputs))]
    model = PeftModel.from_pretrained(load_full_precision(base), str(inputs[0][1]), adapter_name=names[0])
    for name, (_, folder) in zip(names[1:], inputs[1:], strict=True):
        model.load_adapter(str(folder), adapter_name=name)
    model.eval()

    torch.manual_seed(SEED)  # dare_ties drops entries at random
    try:
        model.add_weighted_adapter(names, list(weights), COMBINED, combination_type=method, density=density)
    except ValueError as exc:
        raise Conflict(f"peft cannot combine these adapters: {str(exc).splitlines()[0]}") from None
    if COMBINED not in model.peft_config:
        raise AssertionError("add_weighted_adapter added nothing")

    max_diff = probe = None
    if method == "cat":
        ids = probe_batch(model)
        model.base_model.set_adapter(COMBINED)
        stacked = logits(model, ids)
        layers = [module for module in model.modules() if isinstance(module, LoraLayer)]
        # The reference: every input active at once, each scaled by its weight.
        for layer in layers:
            for name, weight in zip(names, weights, strict=True):
                if name in layer.scaling:
                    layer.set_scale(name, weight)
        model.base_model.set_adapter(names)
        max_diff = float((logits(model, ids) - stacked).abs().max())
        probe = describe_probe(ids)

    if output_dir.exists():
        shutil.rmtree(output_dir)
    model.save_pretrained(str(output_dir), selected_adapters=[COMBINED], safe_serialization=True)
    (output_dir / "README.md").unlink(missing_ok=True)  # peft's template card
    adapterfiles.set_base(output_dir, base.model_id, base.revision)
    config = adapterfiles.read_config(output_dir)
    outcome = StackOutcome(
        adapter_dir=output_dir,
        method=method,
        weights=list(weights),
        density=density,
        lora=adapterfiles.lora_shape(config),
        max_logit_diff=max_diff,
        probe=probe,
        libraries=library_versions(),
    )
    recipe = {
        "base_model": base.model_id,
        "base_revision": base.revision,
        "stack": {"inputs": [label for label, _ in inputs], **outcome.record()},
        "lora": outcome.lora,
        "libraries": outcome.libraries,
    }
    (output_dir / RECIPE_FILE).write_text(json.dumps(recipe, indent=2, sort_keys=True) + "\n")
    return outcome

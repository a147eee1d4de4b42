"""The retention budget on real forgetting (builtin:tiny, the shipped samples): does the chosen version
stay within the budget on every suite set, how much of the raw update's gain does it keep, and what
does the search cost next to training?

    .venv/bin/python benchmarks/retention.py [--quick] [--budget 0.05] [--json PATH]

Two dataset pairs, each with general text (held-out Python docs) as the retention set:

- ``update-2``: the demo's update 2 (copyleft licenses, trained hard) continuing update 1 (permissive
  licenses, trained gently): the continuation path (exact ``cat`` candidates);
- ``update-1-first``: update 1 trained hard as a *first* version on the base, which the demo never
  does: the first-version path (``lora_B`` scaled).

Target: the strength search under 50% of the training time (wall and CPU). ``--quick`` trains on a
few rows with two bisection steps: it checks that the script runs; its figures mean nothing.
"""

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TARGET = 0.5
REPO = Path(__file__).resolve().parent.parent


def run(*, quick: bool = False, budget: float = 0.05, threads: int = 1) -> dict[str, Any]:
    import torch

    import loraledger
    from loraledger.schemas.specs import LoraSpec, Recipe, RetentionSpec, TrainSpec
    from loraledger.trainer.builtin import SAMPLES_DIR

    # The demo's recipes (cli/demo.py): its gentle update 1 and the hard update 2 that forgets.
    lora = LoraSpec(
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    )
    gentle0 = TrainSpec(learning_rate=1e-3, epochs=0.5, max_length=128, batch_tokens=1024)
    hard0 = TrainSpec(learning_rate=1e-2, scheduler="constant", epochs=1, max_length=128, batch_tokens=1024)

    torch.set_num_threads(threads)
    # The built-in base is built once and shared (as the tests and the other benchmarks do).
    cache = Path(os.environ.get("ADAPTERS_CACHE") or REPO / "build" / "test-cache").resolve()
    samples = SAMPLES_DIR
    legal, general = samples / "legal", samples / "general" / "retention-eval.jsonl"
    retention = RetentionSpec(max_forgetting=budget, bisection_steps=2 if quick else 5, replay_shares=[])
    hard, gentle = hard0, gentle0
    results: dict[str, Any] = {"budget": budget, "target_search_share": TARGET, "pairs": {}}
    with tempfile.TemporaryDirectory(prefix="bench-retention-") as scratch:
        data = Path(scratch) / "data"
        data.mkdir()

        def rows(path: Path) -> Path:
            if not quick:
                return path
            cut = data / path.name
            cut.write_text("".join(path.read_text().splitlines(keepends=True)[:6]))
            return cut

        pairs = {
            "update-2": ("update-1", "update-2"),
            "update-1-first": (None, "update-1"),
        }
        for pair, (first, update) in pairs.items():
            ledger = loraledger.open(Path(scratch) / pair, cache=cache)
            ledger.add_to_suite("licenses", rows(general), label="general text")
            base: str | None = "builtin:tiny"
            if first is not None:
                ledger.train(
                    "licenses",
                    rows(legal / f"{first}.jsonl"),
                    eval=rows(legal / f"{first}-eval.jsonl"),
                    base=base,
                    recipe=Recipe(lora=lora, training=gentle),
                )
                base = None
            started = time.perf_counter()
            result = ledger.train(
                "licenses",
                rows(legal / f"{update}.jsonl"),
                eval=rows(legal / f"{update}-eval.jsonl"),
                base=base,
                recipe=Recipe(lora=lora, training=hard, retention=retention),
            )
            results["pairs"][pair] = figures(result, time.perf_counter() - started)
    return results


def figures(result: Any, wall: float) -> dict[str, Any]:
    outcome = result.retention
    trace = outcome.trace()
    chosen = outcome.chosen
    raw = outcome.candidates[0]
    strength = [c for c in outcome.candidates if c.remedy == "strength"]
    train_wall, train_cpu = result.outcome.seconds, result.outcome.cpu_seconds or 0.0
    search_wall = sum(c.seconds for c in strength)
    search_cpu = sum(c.cpu_seconds for c in strength)
    return {
        "version": result.version.ref,
        "raw": outcome.raw_ref,
        "remedy": trace["remedy"],
        "alpha": trace["alpha"],
        "raw_forgetting": raw.forgetting,
        "chosen_forgetting": chosen.forgetting if chosen else None,
        "within_budget_on_every_set": bool(chosen)
        and all(value <= outcome.budget for value in chosen.forgetting.values()),
        "gain_share_kept": chosen.gain_share if chosen else None,
        "candidates": len(strength),
        "train_seconds": train_wall,
        "train_cpu_seconds": train_cpu,
        "strength_search_seconds": search_wall,
        "strength_search_cpu_seconds": search_cpu,
        "search_share_wall": search_wall / train_wall if train_wall else None,
        "search_share_cpu": search_cpu / train_cpu if train_cpu else None,
        "per_candidate_share_cpu": search_cpu / len(strength) / train_cpu if strength and train_cpu else None,
        "command_seconds": wall,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--budget", type=float, default=0.05)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    results = run(quick=args.quick, budget=args.budget)
    text = json.dumps(results, indent=1)
    if args.json:
        args.json.write_text(text)
    print(text)


if __name__ == "__main__":
    sys.exit(main())

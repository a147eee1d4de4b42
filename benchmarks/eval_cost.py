"""Eval cost: scoring a version on its default suite, against training it.

    .venv/bin/python benchmarks/eval_cost.py [--quick] [--threads N] [--json PATH]

One update of ``builtin:tiny`` on ``trainer/samples/legal/update-1.jsonl`` (the default recipe) with its
eval split ``legal/update-1-eval.jsonl``, in an adapter whose suite already holds the general retention
set ``general/retention-eval.jsonl``: version 1's default suite is those two sets. Measured in this
process, wall and CPU time:

- train: ``run_training`` without eval (what ``adapters train --no-eval`` does: read and digest the data,
  load the base, train, save, store and register), and its training loop alone;
- eval: what ``adapters eval NAME@1`` does for the version (``Scorer.ensure_version``): check out the
  adapter, load base + adapter, score every set of the suite (strided NLL), record the scores.

Target (issue 8): the eval costs at most 20% of the training. ``--quick`` trains a twentieth of an
epoch (a smoke run: the share means nothing then). Prints a table and writes JSON (default
build/benchmarks/eval_cost.json). ``run()`` returns the same dict, for benchmarks/run.py.
"""

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "trainer" / "samples"
TRAIN_FILE = SAMPLES / "legal" / "update-1.jsonl"
EVAL_FILE = SAMPLES / "legal" / "update-1-eval.jsonl"
RETENTION_FILE = SAMPLES / "general" / "retention-eval.jsonl"
DEFAULT_JSON = REPO / "build" / "benchmarks" / "eval_cost.json"
BASE = "builtin:tiny"
NAME = "legal"
TARGET_SHARE = 0.20


def timed(action: Callable[[], Any]) -> tuple[Any, dict[str, float]]:
    wall, cpu = time.perf_counter(), time.process_time()
    result = action()
    return result, {"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu}


def run(quick: bool = False, threads: int = 1) -> dict[str, Any]:
    import torch

    import loraledger
    from loraledger.bases import recorded_base
    from loraledger.schemas.specs import TrainSpec
    from loraledger.suites import Scorer, suite_sets
    from loraledger.trainer.models import resolve_base

    saved_threads = torch.get_num_threads()
    if threads > 0:
        torch.set_num_threads(threads)
    cache = Path(os.environ.get("ADAPTERS_CACHE") or REPO / "build" / "test-cache").resolve()
    resolve_base(BASE, cache_dir=cache)  # build it now if needed: a first build is not training time
    try:
        with tempfile.TemporaryDirectory(prefix="loraledger-eval-cost-") as scratch:
            home = Path(scratch)
            ledger = loraledger.open(
                home,
                db=f"sqlite:///{home / 'registry.db'}",
                store=str(home / "artifacts"),
                user="bench",
                cache=cache,
            )
            ledger.add_to_suite(NAME, RETENTION_FILE)
            training = TrainSpec(epochs=0.05) if quick else TrainSpec()
            result, train = timed(
                lambda: ledger.train(
                    NAME, TRAIN_FILE, eval=EVAL_FILE, base=BASE, epochs=training.epochs, run_eval=False
                )
            )
            version, registry, settings = result.version, ledger.registry, ledger.settings
            # The scoring step on its own (the library's scorer, as `adapters train` runs it after training).
            suite = suite_sets(registry, NAME)
            scorer = Scorer(registry, version.base, lambda: recorded_base(settings, version.base))
            evals, evaluation = timed(lambda: scorer.ensure_version(version, suite))
    finally:
        torch.set_num_threads(saved_threads)
    outcome = result.outcome
    loop = {"wall": outcome.seconds, "cpu": outcome.cpu_seconds or float("nan")}
    share = {clock: evaluation[clock] / train[clock] for clock in ("wall", "cpu")}
    return {
        "benchmark": "eval_cost",
        "base": BASE,
        "quick": quick,
        "threads": threads or "library default",
        "train_data": str(TRAIN_FILE.relative_to(REPO)),
        "train_tokens": outcome.data.tokens,
        "epochs": training.epochs,
        "suite": sorted(s.label for s in suite.values()),
        "scores": {e.label: e.value for e in evals if e.metric == "nll"},
        "train_seconds": train,
        "train_loop_seconds": loop,
        "eval_seconds": evaluation,
        "eval_share_of_train": share,
        "eval_share_of_train_loop": {clock: evaluation[clock] / loop[clock] for clock in ("wall", "cpu")},
        "target_share": TARGET_SHARE,
        "met": share["cpu"] <= TARGET_SHARE,
        "machine": {"cpus": os.cpu_count(), "load_average": os.getloadavg()},
    }


def render(results: dict[str, Any]) -> str:
    train, loop, evaluation = results["train_seconds"], results["train_loop_seconds"], results["eval_seconds"]
    share, share_loop = results["eval_share_of_train"], results["eval_share_of_train_loop"]
    return "\n".join(
        [
            f"eval cost: {results['base']} on {results['train_data']} ({results['train_tokens']:,} tokens, "
            f"{results['epochs']:g} epoch); suite: {', '.join(results['suite'])}",
            f"{'measure':<44} {'wall s':>8} {'cpu s':>8}",
            f"{'train (adapters train --no-eval, in process)':<44} "
            f"{train['wall']:>8.1f} {train['cpu']:>8.1f}",
            f"{'  of which the training loop':<44} {loop['wall']:>8.1f} {loop['cpu']:>8.1f}",
            f"{'eval NAME@1 on its suite':<44} {evaluation['wall']:>8.1f} {evaluation['cpu']:>8.1f}",
            f"{'eval / train':<44} {share['wall']:>8.1%} {share['cpu']:>8.1%}  "
            f"(target <= {results['target_share']:.0%}: {'met' if results['met'] else 'MISSED'})",
            f"{'eval / training loop':<44} {share_loop['wall']:>8.1%} {share_loop['cpu']:>8.1%}",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="A twentieth of an epoch: a smoke run.")
    parser.add_argument("--threads", type=int, default=1, help="Torch threads (0: the library default).")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="Where to write the results.")
    args = parser.parse_args()
    results = run(args.quick, args.threads)
    print(render(results))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwritten to {args.json}", file=sys.stderr)


if __name__ == "__main__":
    main()

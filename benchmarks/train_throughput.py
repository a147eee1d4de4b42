"""Training throughput of the trainer on the shipped sample data, per precision.

    .venv/bin/python benchmarks/train_throughput.py [--base builtin:tiny] [--epochs 0.25] [--json PATH]

Trains ``builtin:tiny`` (built on first use) on ``trainer/samples/legal/update-1.jsonl`` with the
default batching (windows of 512 tokens packed into rows, 4,096 tokens per micro-batch), once in fp32
and once each on a 4-bit (NF4, QLoRA) and an 8-bit base, and reports tokens per second of wall time
and of CPU time (on a shared machine the wall time includes waiting for a core), the padding share,
and the padding the same windows would cost padded one per row to max_length (the seed recipe's way).

Prints a table and writes JSON (default build/benchmarks/train_throughput.json). ``run()`` returns the
same dict, for benchmarks/run.py.
"""

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "trainer" / "samples" / "legal" / "update-1.jsonl"


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run(
    base: str = "builtin:tiny", epochs: float = 0.25, quantize: tuple[str, ...] = ("none", "4bit", "8bit")
) -> dict[str, Any]:
    from loraledger.schemas.jobs import TrainJob
    from loraledger.schemas.specs import LoraSpec, TrainSpec
    from loraledger.trainer import data as batching
    from loraledger.trainer import models
    from loraledger.trainer.datafiles import read_records
    from loraledger.trainer.recipe import train

    cache = Path(os.environ.get("ADAPTERS_CACHE", REPO / "build" / "test-cache"))
    source = models.resolve_base(base, cache_dir=cache)
    records = read_records(DATA).records
    results: dict[str, Any] = {
        "base": base,
        "data": str(DATA.relative_to(REPO)),
        "epochs": epochs,
        "runs": [],
    }
    for mode in quantize:
        spec = TrainSpec(epochs=epochs, quantize=mode)  # type: ignore[arg-type]
        with tempfile.TemporaryDirectory() as scratch:
            job = TrainJob(
                base=source,
                lora=LoraSpec(),
                training=spec,
                records=records,
                output_dir=Path(scratch) / "adapter",
                checkpoint_dir=Path(scratch) / "checkpoints",
            )
            cpu, wall = _cpu_seconds(), time.perf_counter()
            outcome = train(job)
            cpu, wall = _cpu_seconds() - cpu, time.perf_counter() - wall
        stats = outcome.data
        tokens = outcome.tokens_per_second * outcome.seconds
        tokenizer, _ = models.load_tokenizer(source)
        windows, _ = batching.split_windows(batching.tokenize(records, tokenizer), spec.max_length)
        one_per_row = 1 - sum(len(w) for w in windows) / (len(windows) * spec.max_length)
        results["runs"].append(
            {
                "quantize": mode,
                "steps": outcome.steps,
                "train_seconds": round(outcome.seconds, 2),
                "tokens_per_second": round(outcome.tokens_per_second, 1),
                "tokens_per_cpu_second": round(tokens / cpu, 1) if cpu else None,
                "wall_seconds_with_loading": round(wall, 2),
                "rows": stats.rows,
                "windows": stats.sequences,
                "windows_split": stats.windows_split,
                "tokens": stats.tokens,
                "padding_share": round(stats.padding_share, 4),
                "padding_share_one_window_per_row": round(one_per_row, 4),
                "final_loss": outcome.final_loss,
                "peak_rss_mb": outcome.peak_rss_mb,
            }
        )
    results["load_average"] = os.getloadavg()
    results["cpus"] = os.cpu_count()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="builtin:tiny")
    parser.add_argument("--epochs", type=float, default=0.25)
    parser.add_argument("--quantize", default="none,4bit,8bit")
    parser.add_argument("--json", type=Path, default=REPO / "build" / "benchmarks" / "train_throughput.json")
    args = parser.parse_args()
    results = run(args.base, args.epochs, tuple(args.quantize.split(",")))
    columns = ("quantize", "steps", "tokens_per_second", "tokens_per_cpu_second", "padding_share")
    print(" | ".join(columns))
    for row in results["runs"]:
        print(" | ".join(str(row[column]) for column in columns))
    first = results["runs"][0]
    print(
        f"{first['rows']} rows -> {first['windows']} windows ({first['windows_split']} from splitting), "
        f"{first['tokens']} tokens; padding {first['padding_share']:.1%} packed vs "
        f"{first['padding_share_one_window_per_row']:.1%} one window per row; load {results['load_average']}"
    )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.json}", file=sys.stderr)


if __name__ == "__main__":
    main()

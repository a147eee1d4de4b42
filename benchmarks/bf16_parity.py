"""Does bf16 autocast train as well as fp32? Held-out NLL after the same update, both ways.

    .venv/bin/python benchmarks/bf16_parity.py [--base builtin:tiny|GGUF] [--rows N] [--max-length N]

Trains one LoRA update in fp32 and one under CPU bf16 autocast (base, LoRA weights and optimizer state
fp32), same seed and data (chunks of ``legal/update-1.jsonl``), and scores both adapters on held-out
legal text in fp32. On a CPU without native bf16 the autocast run is emulated (tens of times slower):
its NLL is still the bf16 numerics, but its speed means nothing, so only the NLL is reported there.
Target (issue 15): bf16's held-out NLL within 1% of fp32's.
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "trainer" / "samples"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default="builtin:tiny")
    parser.add_argument("--rows", type=int, default=24)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--eval-docs", type=int, default=4)
    parser.add_argument("--batch-tokens", type=int, default=2048)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--json", type=Path, default=REPO / "build" / "benchmarks" / "bf16_parity.json")
    args = parser.parse_args()

    import torch

    from loraledger.schemas.jobs import TrainJob
    from loraledger.schemas.specs import EvalSpec, LoraSpec, TrainSpec
    from loraledger.settings import Settings
    from loraledger.trainer import evaluate, models, recipe

    native = models.cpu_bf16()
    settings = Settings.load()
    source = models.resolve_base(args.base, cache_dir=settings.cache_dir)
    rows = [json.loads(line) for line in (SAMPLES / "legal" / "update-1.jsonl").read_text().splitlines()]
    chunks = [
        {"text": row["text"][i : i + 500]} for row in rows for i in range(0, len(row["text"]) - 500, 500)
    ]
    train_rows = chunks[:: max(1, len(chunks) // args.rows)][: args.rows]
    held = [json.loads(line) for line in (SAMPLES / "legal" / "update-1-eval.jsonl").read_text().splitlines()]
    held = held[: args.eval_docs]
    results: dict[str, Any] = {"base": args.base, "native_bf16": native, "rows": len(train_rows)}
    results |= {"max_length": args.max_length, "batch_tokens": args.batch_tokens, "epochs": args.epochs}
    if not native:  # force the autocast path: what a CPU with native bf16 would compute
        models.cpu_bf16 = lambda: "emulated"  # type: ignore[assignment]
    spec = EvalSpec(max_length=args.max_length, stride=args.max_length // 2)
    with tempfile.TemporaryDirectory(prefix="loraledger-bf16-") as scratch:
        for precision in ("fp32", "bf16"):
            job = TrainJob(
                base=source,
                lora=LoraSpec(r=16, alpha=32, target_modules=["q_proj", "v_proj"]),
                training=TrainSpec(
                    max_length=args.max_length,
                    batch_tokens=args.batch_tokens,
                    learning_rate=1e-3,
                    epochs=args.epochs,
                    precision=precision,  # type: ignore[arg-type]
                ),
                records=train_rows,
                output_dir=Path(scratch) / precision,
                checkpoint_dir=Path(scratch) / f"{precision}-checkpoints",
            )
            started = time.perf_counter()
            outcome = recipe.train(job)
            seconds = time.perf_counter() - started
            score = evaluate.score_sets(source, outcome.adapter_dir, {"held": held}, spec, device="cpu")[
                "held"
            ]
            results[precision] = {
                "precision_used": outcome.precision,
                "tokens": outcome.data.tokens,
                "steps": outcome.steps,
                "seconds": seconds,
                "final_train_loss": outcome.final_loss,
                "heldout_nll": score.nll,
            }
            print(f"{precision}: {results[precision]}", file=sys.stderr)
        base_score = evaluate.score_sets(source, None, {"held": held}, spec, device="cpu")["held"]
    results["base_heldout_nll"] = base_score.nll
    results["bf16_nll_change"] = results["bf16"]["heldout_nll"] / results["fp32"]["heldout_nll"] - 1
    results["within_1_percent"] = abs(results["bf16_nll_change"]) <= 0.01
    results["dtype_check"] = str(torch.bfloat16)
    print(json.dumps(results, indent=2))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()

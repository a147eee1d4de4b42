"""Benchmark scores from lm-evaluation-harness (optional extra ``lm-eval``), recorded as eval results.

Each task becomes a dataset record of its own (no stored rows: the harness owns the data), named by a
digest of the task, its version, shots and sample limit, so scores from different setups never mix.
Metrics are recorded as ``lm-eval:<metric>`` (``lm-eval:acc``, ``lm-eval:acc_norm``...), with the
harness's filter appended when it is not ``none``; standard errors are left out.
"""

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from loraledger.registry.digests import bytes_digest, canonical_json
from loraledger.schemas.errors import InvalidInput
from loraledger.schemas.jobs import BaseSource
from loraledger.schemas.records import NewDataset, NewEval

MISSING = "lm-evaluation-harness is not installed: pip install 'loraledger[lm-eval]' (or pip install lm-eval)"
# The setting recorded with the harness's scores: its Hugging Face backend with its own defaults (full
# weights, the model config's dtype); the task setup is in the dataset digest.
SETTING = "lm-eval hf"


def require_lm_eval() -> Any:
    try:
        import lm_eval
    except ImportError:
        raise InvalidInput(MISSING) from None
    return lm_eval


def run_tasks(
    source: BaseSource,
    adapter: Path | None,
    tasks: list[str],
    *,
    limit: int | None = None,
    batch_size: int | str = "auto",
) -> dict[str, Any]:
    """Run the harness's Hugging Face backend on the base (with the adapter applied through peft)."""
    lm_eval = require_lm_eval()
    model_args = f"pretrained={source.path}"
    if source.revision:
        model_args += f",revision={source.revision}"
    if adapter is not None:
        model_args += f",peft={adapter}"
    results = lm_eval.simple_evaluate(
        model="hf", model_args=model_args, tasks=tasks, limit=limit, batch_size=batch_size
    )
    if not isinstance(results, Mapping) or "results" not in results:
        raise InvalidInput(f"lm-evaluation-harness returned no results for {', '.join(tasks)}")
    return dict(results)


def results_to_evals(results: Mapping[str, Any], *, limit: int | None = None) -> list[NewEval]:
    """The harness's results dict -> eval results, one dataset per task."""
    evals = []
    for task, metrics in sorted(results.get("results", {}).items()):
        samples = (results.get("n-samples") or {}).get(task) or {}
        setup = {
            "lm-eval task": task,
            "version": (results.get("versions") or {}).get(task),
            "n-shot": (results.get("n-shot") or {}).get(task),
            "limit": limit,
        }
        dataset = NewDataset(
            digest=bytes_digest(canonical_json(setup).encode()),
            format="lm-eval",
            rows=int(samples.get("effective") or samples.get("original") or 0),
            source=f"lm-eval:{task}",
        )
        for key, value in sorted(metrics.items()):
            if isinstance(value, bool) or not isinstance(value, int | float):
                continue  # "alias", and "N/A" where the harness has no number
            metric, _, filter_name = key.partition(",")
            if metric.endswith("_stderr"):
                continue
            name = f"lm-eval:{metric}" + (f"[{filter_name}]" if filter_name and filter_name != "none" else "")
            evals.append(
                NewEval(
                    dataset=dataset, metric=name, value=float(value), setting=SETTING, label=f"lm-eval {task}"
                )
            )
    return evals

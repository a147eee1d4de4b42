"""`make bench` keeps running: benchmarks/run.py --quick (tiny sizes) runs every default section and
writes the figures docs/performance.md is built from. Timing is never asserted here:
speed targets belong to the benchmarks themselves."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_quick_bench_runs_every_section_and_writes_the_figures(tmp_path: Path, tiny_base: Path) -> None:
    out = tmp_path / "latest.json"
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "run.py"), "--quick", "--json", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=840,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(out.read_text())
    assert set(results["sections"]) == {
        "training",
        "real-model",
        "eval",
        "registry",
        "cold",
        "dashboard",
        "publish",
        "serve",
    }
    dashboard = results["sections"]["dashboard"]
    assert dashboard["registry"]["versions"] == 500 and "adapters page" in dashboard["seconds"]
    serve = results["sections"]["serve"]
    assert serve["sequential"]["tokens_per_second"] > 0 and serve["concurrent"]["requests_per_second"] > 0
    assert serve["first_token"]["median_seconds"] > 0 and len(serve["swap"]["latencies"]) == 1

    training = results["sections"]["training"]
    assert set(training["summary"]) == {"short", "long"}
    for name, summary in training["summary"].items():
        for tool in ("seed", "ours"):
            figures = summary[tool]
            assert figures["tokens"] > 0 and figures["peak_rss_mb"] > 0
            assert figures["tokens_per_second"] > 0 and figures["tokens_per_cpu_second"] > 0
            assert figures["heldout_nll"] > 0
        assert summary["ours"]["dropped_tokens"] == 0, name  # nothing truncated, ever
        assert {"speedup", "speedup_cpu", "heldout_nll_change", "checks"} <= set(summary)
    # the peers of issue 15: TRL's two packings beside the seed; the seed fed cut rows on long documents
    assert set(training["summary"]["short"]) >= {"trl", "trl-keep", "peers"}
    assert "seed-cut" in training["summary"]["long"]
    assert training["summary"]["long"]["seed-cut"]["dropped_tokens"] == 0
    assert training["summary"]["long"]["trl-keep"]["dropped_tokens"] == 0  # bfd_split keeps every token
    assert training["summary"]["long"]["trl"]["dropped_tokens"] > 0  # bfd cuts each document at 512
    real = results["sections"]["real-model"]
    assert real["runs"]["fp32"]["tokens"] > 0 and real["runs"]["fp32"]["peak_rss_mb"] > 0
    assert real["summary"]["heldout_nll_before"] > 0 and real["summary"]["general_nll_after"] > 0
    assert training["summary"]["short"]["seed"]["dropped_tokens"] == 0  # ~100-token rows fit in 512
    assert training["summary"]["long"]["seed"]["dropped_tokens"] > 0  # truncated at 512
    # the seed pads every short row to 512 tokens; ours packs them
    assert training["summary"]["short"]["seed"]["padding_share"] > 0.5
    assert training["summary"]["short"]["ours"]["padding_share"] < 0.5

    evaluation = results["sections"]["eval"]
    assert evaluation["suite"] == ["retention-eval", "update-1-eval"]
    assert set(evaluation["scores"]) == {"retention-eval", "update-1-eval"}
    assert evaluation["eval_seconds"]["cpu"] > 0 and evaluation["train_seconds"]["cpu"] > 0

    registry = results["sections"]["registry"]
    assert registry["registry"]["versions"] == 500 and registry["register"]["versions"] == 20
    cold = results["sections"]["cold"]["seconds"]
    assert set(cold) == {"adapters --help", "adapters list (empty registry)"}
    assert results["sections"]["publish"]["roundtrip_adapter_max_logit_diff"] < 1e-4

    measures = [row["measure"] for row in results["table"]]
    assert any(m.startswith("training short") for m in measures)
    assert any(m.startswith("training long") for m in measures)
    assert any(m.startswith("eval:") for m in measures)
    assert any(m.startswith("cold start: adapters --help") for m in measures)
    assert results["machine"]["cpus"] and results["machine"]["torch"]
    assert "training short" in done.stdout  # the table is printed too

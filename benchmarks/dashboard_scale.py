"""The dashboard on the registry benchmark's data: 10,000 versions and 50,000 eval results.

    .venv/bin/python benchmarks/dashboard_scale.py [--repeat N] [--json PATH]

Builds the registry of benchmarks/registry_scale.py (50 adapters; ``legal`` holds half the versions in
one lineage, each ``team-NN`` about 100), then times whole HTTP requests to the dashboard app in process
(Starlette's TestClient: routing, Ledger reads, template, response), best of ``--repeat``:

- the adapters page; an adapter page (``team-07``, ~100 versions), as HTML and as JSON;
- one version page; the datasets page of one adapter;
- the page of ``legal``, the 5,000-version lineage (once: it is the slow case, reported, no target).

Target (issue 16): the adapters page and an adapter page under 1 s. Writes JSON (default
build/benchmarks/dashboard_scale.json); ``run()`` returns the same dict, for benchmarks/run.py.
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
DEFAULT_JSON = HERE.parent / "build" / "benchmarks" / "dashboard_scale.json"
TARGET = 1.0
SMALL = "team-07"


def run(repeat: int = 3, versions: int | None = None) -> dict[str, Any]:
    import registry_scale
    from fastapi.testclient import TestClient

    import loraledger
    from loraledger.dashboard import create_app

    scratch = Path(tempfile.mkdtemp(prefix="loraledger-dashboard-"))
    try:
        home = scratch / "home"
        sizes = registry_scale.build(
            f"sqlite:///{home / 'registry.db'}", str(home / "artifacts"), versions or registry_scale.VERSIONS
        )
        client = TestClient(create_app(loraledger.open(home)))
        client.get("/static/style.css")  # the app's start-up (templates, static files), not a page

        def timed(path: str, times: int) -> dict[str, float]:
            def get() -> None:
                response = client.get(path)
                if response.status_code != 200:
                    raise AssertionError(f"{path}: {response.status_code} {response.text[:300]}")

            return registry_scale.best_of(times, get)

        cold = timed("/adapters", 1)  # the first request opens the registry
        pages = {
            "adapters page (first request)": cold,
            "adapters page": timed("/adapters", repeat),
            f"adapter page {SMALL}": timed(f"/adapters/{SMALL}", repeat),
            f"adapter page {SMALL} as JSON": timed(f"/adapters/{SMALL}.json", repeat),
            f"version page {SMALL}@3": timed(f"/adapters/{SMALL}/versions/3", repeat),
            f"datasets page of {SMALL}": timed(f"/datasets?adapter={SMALL}", repeat),
            f"adapter page {registry_scale.BIG} ({sizes['versions'] // 2:,}-version lineage)": timed(
                f"/adapters/{registry_scale.BIG}", 1
            ),
        }
        checked = ("adapters page", f"adapter page {SMALL}")
        return {
            "benchmark": "dashboard_scale",
            "registry": sizes,
            "seconds": pages,
            "target_seconds": TARGET,
            "met": all(pages[label]["wall"] < TARGET for label in checked),
            "checked": list(checked),
            "machine": {"cpus": os.cpu_count(), "load_average": os.getloadavg()},
        }
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="Requests per page; the best is kept.")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="Where to write the results.")
    args = parser.parse_args()
    results = run(args.repeat)
    for label, timing in results["seconds"].items():
        print(f"{label:<50} {timing['wall']:>7.3f} s wall {timing['cpu']:>7.3f} s CPU")
    verdict = "met" if results["met"] else "MISSED"
    print(f"target < {TARGET:g} s for {', '.join(results['checked'])}: {verdict}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()

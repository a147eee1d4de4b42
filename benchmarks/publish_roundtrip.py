"""Stack, merge and publish on the built-in base: exactness and Hub round-trip time.

    .venv/bin/python benchmarks/publish_roundtrip.py [--json PATH]

Offline: the Hub is the loopback server of the tests (tests/support/hub_server.py), driven by the real
huggingface_hub client. Two random LoRA adapters (r=4 on q,v; r=8 on q,v,o) on ``builtin:tiny`` are
imported, then:

- ``stack`` (cat): largest logit difference of the stacked adapter from the inputs applied together;
- ``merge`` (fp32 and bf16): largest logit difference of the merged model from base + adapter;
- ``push --adapter`` and ``push --merged``: seconds to push (repo, one commit, tag, record) and to
  download back with ``snapshot_download``, and the logit difference of what came back.

Prints a table and writes JSON (default build/benchmarks/publish_roundtrip.json).
"""

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DEFAULT_JSON = REPO / "build" / "benchmarks" / "publish_roundtrip.json"
TOKEN = "hf_benchmark_token"


def _point_hub_client_at(url: str, hf_home: Path) -> None:
    """What the tests' hub_env fixture does: the client read its settings at import."""
    os.environ.update(
        HF_ENDPOINT=url, HF_TOKEN=TOKEN, HF_HOME=str(hf_home), HF_HUB_DISABLE_XET="1", HF_HUB_OFFLINE="0"
    )
    from huggingface_hub import constants, hf_api

    constants.ENDPOINT = url
    constants.HUGGINGFACE_CO_URL_TEMPLATE = url + "/{repo_id}/resolve/{revision}/{filename}"
    constants.HF_HUB_OFFLINE = False
    constants.HF_HUB_DISABLE_XET = True
    constants.HF_HOME = str(hf_home)
    constants.HF_HUB_CACHE = str(hf_home / "hub")
    constants.HF_TOKEN_PATH = str(hf_home / "token")
    hf_api.api.endpoint = url


def run() -> dict[str, Any]:
    sys.path.insert(0, str(REPO / "tests"))
    import torch
    from huggingface_hub import snapshot_download
    from peft import PeftModel
    from support.adapters import load_base, logits, make_lora, with_adapter
    from support.hub_server import HubServer
    from transformers import AutoModelForCausalLM

    import loraledger
    from loraledger.trainer.builtin import ensure_builtin

    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="loraledger-bench-") as scratch:
        work = Path(scratch)
        cache = Path(os.environ.get("ADAPTERS_TEST_CACHE", REPO / "build" / "test-cache"))
        os.environ.update(ADAPTERS_HOME=str(work / "home"), ADAPTERS_CACHE=str(cache), ADAPTERS_USER="bench")
        base = ensure_builtin("builtin:tiny", cache / "builtin")
        ledger = loraledger.open()
        legal = make_lora(base, work / "legal", r=4, seed=1, base_id="builtin:tiny")
        style = make_lora(
            base, work / "style", r=8, seed=2, base_id="builtin:tiny", targets=("q_proj", "v_proj", "o_proj")
        )
        ledger.import_adapter("legal", str(legal))
        ledger.import_adapter("style", str(style))

        stacked = ledger.stack("both", ["legal@1", "style@1"])
        together = PeftModel.from_pretrained(load_base(base), str(legal), adapter_name="legal")
        together.load_adapter(str(style), adapter_name="style")
        together.base_model.set_adapter(["legal", "style"])
        together.eval()
        stacked_model = with_adapter(base, ledger.checkout("both@1", work / "both"))
        results["stack_recorded_max_logit_diff"] = stacked.details["max_logit_diff"]
        results["stack_independent_max_logit_diff"] = float(
            (logits(stacked_model) - logits(together)).abs().max()
        )

        for dtype in ("fp32", "bf16"):
            merged = ledger.merge("legal@1", work / f"merged-{dtype}", dtype=dtype)
            results[f"merge_{dtype}_max_logit_diff"] = merged.details["max_logit_diff"]
            results[f"merge_{dtype}_saved_max_logit_diff"] = merged.details["saved_max_logit_diff"]

        with HubServer(work / "hub", tokens=[TOKEN]) as hub:
            _point_hub_client_at(hub.url, work / "hf_home")
            reference = logits(with_adapter(base, legal))
            for kind, merged_push in (("adapter", False), ("merged", True)):
                repo = f"bench/legal-{kind}"
                started = time.perf_counter()
                pushed = ledger.push("legal@1", repo, merged=merged_push)
                push_seconds = time.perf_counter() - started
                started = time.perf_counter()
                folder = Path(snapshot_download(repo, revision="v1", endpoint=hub.url, local_dir=work / repo))
                download_seconds = time.perf_counter() - started
                if merged_push:
                    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
                else:
                    model = with_adapter(base, folder)
                results[f"push_{kind}_seconds"] = push_seconds
                results[f"push_{kind}_hub_seconds"] = pushed.outcome.seconds
                results[f"download_{kind}_seconds"] = download_seconds
                results[f"roundtrip_{kind}_seconds"] = push_seconds + download_seconds
                results[f"roundtrip_{kind}_bytes"] = sum(
                    p.stat().st_size for p in folder.rglob("*") if p.is_file()
                )
                results[f"roundtrip_{kind}_max_logit_diff"] = float((logits(model) - reference).abs().max())
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON)
    args = parser.parse_args()
    results = run()
    width = max(map(len, results))
    for key, value in results.items():
        shown = f"{value:.3g}" if isinstance(value, float) else f"{value:,}"
        print(f"{key:<{width}}  {shown}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()

"""`adapters serve` on builtin:tiny: throughput, time to first token, and how soon a rollback in the
registry answers requests.

    .venv/bin/python benchmarks/serve_latency.py [--requests N] [--swaps N] [--json PATH]

Starts the real server (a subprocess on a loopback port) over a registry holding legal@1 and legal@2
(random LoRAs, r=4 on q and v) and talks to it with the official openai client:

- sequential greedy completions of 32 tokens: requests/s and completion tokens/s;
- 4 clients at once, alternating legal@1 and legal@2 (the adapters take turns on the base);
- time to first token of a streamed completion (first chunk with text), median over the requests;
- alias swap: a client asks for ``legal`` back to back while the registry moves ``current`` between
  the two versions (``Ledger.promote``/``rollback``, as another process would); the latency is the
  time from the move's commit to the first answer from the new version. A request in flight finishes
  on its version, so the figure includes up to one request's duration.

Prints a table and writes JSON (default build/benchmarks/serve_latency.json). ``run()`` returns the dict.
"""

import argparse
import itertools
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DEFAULT_JSON = REPO / "build" / "benchmarks" / "serve_latency.json"
PROMPT = "The court held that the contract"
TOKENS = 32


def _complete(client: Any, model: str, tokens: int = TOKENS) -> tuple[str, int]:
    answer = client.completions.create(model=model, prompt=PROMPT, max_tokens=tokens, temperature=0)
    return answer.model, answer.usage.completion_tokens


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux): the figure a busy machine does not skew."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def throughput(client: Any, requests: int, clients: int, pid: int) -> dict[str, float]:
    models = ["legal@1", "legal@2"] * requests
    started, cpu = time.perf_counter(), cpu_seconds(pid)
    with ThreadPoolExecutor(max_workers=clients) as pool:
        answers = list(pool.map(lambda model: _complete(client, model), models[:requests]))
    seconds, cpu = time.perf_counter() - started, cpu_seconds(pid) - cpu
    tokens = sum(count for _, count in answers)
    return {"requests": requests, "clients": clients, "seconds": seconds, "server_cpu_seconds": cpu,
            "requests_per_second": requests / seconds, "tokens_per_second": tokens / seconds,
            "tokens_per_server_cpu_second": tokens / cpu if cpu else 0.0}  # fmt: skip


def first_token(client: Any, requests: int) -> dict[str, float]:
    waits, totals = [], []
    for _ in range(requests):
        started = time.perf_counter()
        stream = client.completions.create(
            model="legal", prompt=PROMPT, max_tokens=TOKENS, temperature=0, stream=True
        )
        first = None
        for chunk in stream:
            if first is None and chunk.choices and chunk.choices[0].text:
                first = time.perf_counter() - started
        totals.append(time.perf_counter() - started)
        waits.append(first if first is not None else totals[-1])
    return {"median_seconds": statistics.median(waits), "max_seconds": max(waits),
            "median_whole_seconds": statistics.median(totals)}  # fmt: skip


def swap_latency(client: Any, ledger: Any, swaps: int) -> dict[str, Any]:
    """Move `current` ``swaps`` times while a client asks for ``legal`` back to back."""
    answered: list[tuple[float, str]] = []  # (time answered, version)
    stop = threading.Event()

    def ask() -> None:
        while not stop.is_set():
            model, _ = _complete(client, "legal", tokens=8)
            answered.append((time.perf_counter(), model))

    asker = threading.Thread(target=ask)
    asker.start()
    latencies = []
    try:
        for swap in range(swaps):
            while len(answered) < 3 * (swap + 1):  # let a few requests through on the old version
                time.sleep(0.01)
            target = "legal@1" if swap % 2 == 0 else "legal@2"
            ledger.promote(target, reason="benchmark")
            committed = time.perf_counter()
            while not any(at > committed and model == target for at, model in answered):
                time.sleep(0.001)
            first = min(at for at, model in answered if at > committed and model == target)
            latencies.append(first - committed)
    finally:
        stop.set()
        asker.join()
    request_seconds = [b[0] - a[0] for a, b in itertools.pairwise(answered)]
    return {"swaps": swaps, "median_seconds": statistics.median(latencies), "max_seconds": max(latencies),
            "latencies": latencies, "median_request_seconds": statistics.median(request_seconds)}  # fmt: skip


def run(requests: int = 40, swaps: int = 6) -> dict[str, Any]:
    sys.path.insert(0, str(REPO / "tests"))
    import openai
    from support.adapters import make_lora
    from support.serving import start_server

    import loraledger
    from loraledger.trainer.builtin import ensure_builtin

    with tempfile.TemporaryDirectory(prefix="loraledger-bench-serve-") as scratch:
        work = Path(scratch)
        cache = Path(os.environ.get("ADAPTERS_TEST_CACHE", REPO / "build" / "test-cache"))
        base = ensure_builtin("builtin:tiny", cache / "builtin")
        ledger = loraledger.open(work / "home", cache=cache, user="bench")
        for seed in (1, 2):
            folder = make_lora(base, work / f"legal-{seed}", r=4, seed=seed, base_id="builtin:tiny")
            ledger.import_adapter("legal", str(folder), promote=True)
        env = dict(os.environ) | {
            "ADAPTERS_HOME": str(work / "home"), "ADAPTERS_CACHE": str(cache), "ADAPTERS_USER": "bench",
            "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
            "PYTHONPATH": str(REPO / "tests"),
        }  # fmt: skip
        for name in ("ADAPTERS_DB", "ADAPTERS_STORE", "ADAPTERS_FAULT"):
            env.pop(name, None)
        started = time.perf_counter()
        server = start_server("legal", env=env, workdir=work / "server")
        start_seconds = time.perf_counter() - started
        try:
            client = openai.OpenAI(base_url=server.url + "/v1", api_key="-", max_retries=0, timeout=300)
            # The first request at a new prompt length is several times slower here (torch's CPU
            # kernels are set up per shape): measure it, then warm both adapters up at these shapes.
            clock = time.perf_counter()
            _complete(client, "legal@1")
            cold_seconds = time.perf_counter() - clock
            for model in ("legal@2", "legal@1", "legal@2"):
                _complete(client, model)
            return {
                "benchmark": "serve",
                "base": "builtin:tiny",
                "max_tokens": TOKENS,
                "start_seconds": start_seconds,
                "cold_request_seconds": cold_seconds,
                "sequential": throughput(client, requests, clients=1, pid=server.process.pid),
                "concurrent": throughput(client, requests, clients=4, pid=server.process.pid),
                "first_token": first_token(client, max(3, requests // 4)),
                "swap": swap_latency(client, ledger, swaps),
                "load_average": os.getloadavg(),
            }
        finally:
            server.stop()


def rows(results: dict[str, Any]) -> list[tuple[str, str]]:
    seq, conc = results["sequential"], results["concurrent"]
    ttft, swap = results["first_token"], results["swap"]
    return [
        ("serve: start (process up, base loaded, listening)", f"{results['start_seconds']:.1f} s"),
        ("serve: first request (new adapter, new prompt shape)", f"{results['cold_request_seconds']:.2f} s"),
        (f"serve: sequential greedy completions ({results['max_tokens']} tokens)",
         f"{seq['requests_per_second']:.2f} req/s, {seq['tokens_per_second']:,.0f} tokens/s "
         f"({seq['tokens_per_server_cpu_second']:,.0f} per server CPU-s)"),
        ("serve: 4 clients, legal@1 and legal@2 alternating",
         f"{conc['requests_per_second']:.2f} req/s, {conc['tokens_per_second']:,.0f} tokens/s "
         f"({conc['tokens_per_server_cpu_second']:,.0f} per server CPU-s)"),
        ("serve: time to first token (streamed)",
         f"median {ttft['median_seconds'] * 1000:.0f} ms, max {ttft['max_seconds'] * 1000:.0f} ms"),
        (f"serve: alias swap, commit -> first answer by the new version ({swap['swaps']} swaps)",
         f"median {swap['median_seconds'] * 1000:.0f} ms, max {swap['max_seconds'] * 1000:.0f} ms "
         f"(one request: {swap['median_request_seconds'] * 1000:.0f} ms)"),
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--swaps", type=int, default=6)
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON)
    args = parser.parse_args()
    results = run(args.requests, args.swaps)
    for measure, result in rows(results):
        print(f"{measure:<75} {result}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()

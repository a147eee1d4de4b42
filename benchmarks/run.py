"""Every benchmark in one run, one table: what `make bench` runs.

    .venv/bin/python benchmarks/run.py [--only training,real-model,eval,registry,cold,dashboard,publish,
                                       serve,throughput] [--quick]
                                       [--rounds N] [--threads N] [--json PATH]

Sections (default: all but ``throughput``):

- ``training`` (seed_vs_adapters.py): the seed recipe against ``adapters train``, short and long data;
  with TRL's ``SFTTrainer`` (default packing and keep-every-token packing) as a second peer;
- ``real-model`` (real_model.py): one update of SmolLM2-135M from its GGUF file: tokens/s, peak RSS,
  held-out NLL before and after, forgetting on general text; fp32, and bf16 where the CPU has it;
- ``eval`` (eval_cost.py): scoring a version on its default suite against training it;
- ``registry`` (registry_scale.py): registering 1,000 versions; list, show and lineage on 10,000
  versions with 50,000 eval results;
- ``cold``: ``adapters --help`` and ``adapters list`` in a new process (taken from the registry section
  when it runs, measured on their own otherwise);
- ``dashboard`` (dashboard_scale.py): ``adapters ui`` pages on the same 10,000 versions and 50,000 evals;
- ``publish`` (publish_roundtrip.py): stack/merge exactness and a Hub push + download on loopback;
- ``serve`` (serve_latency.py): ``adapters serve`` on builtin:tiny with the openai client: requests/s,
  tokens/s, time to first token, and the alias-swap latency (registry commit -> first answer by the
  new version);
- ``throughput`` (train_throughput.py): the trainer per precision (fp32, 4-bit, 8-bit); minutes.
- ``retention`` (retention.py): a 5% retention budget on the shipped update 2 and on update 1 as a
  first version: forgetting per set, gain kept, search cost against training; minutes (not default).

``--quick`` shrinks every section to a smoke run (tiny data, small registry, one round): it checks that
the scripts still run; its figures mean nothing. Prints the table (stdout) and writes everything as JSON
(default benchmarks/results/latest.json, not committed). No GPU rows: those need a CUDA machine.
"""

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))  # the sibling scripts import as modules

DEFAULT_JSON = HERE / "results" / "latest.json"
SECTIONS = (
    "training",
    "real-model",
    "eval",
    "registry",
    "cold",
    "dashboard",
    "publish",
    "serve",
    "throughput",
    "retention",
)
# throughput and retention take minutes: asked for by name (--only).
DEFAULT_SECTIONS = SECTIONS[:-2]
COLD_TARGET = 0.5
Row = dict[str, str]


# ---- sections: each returns its results (the scripts' own dicts) -----------------------------------


def training(args: argparse.Namespace) -> dict[str, Any]:
    import seed_vs_adapters

    return seed_vs_adapters.run(quick=args.quick, rounds=args.rounds, threads=args.threads)


def real_model(args: argparse.Namespace) -> dict[str, Any]:
    import real_model

    return real_model.run(quick=args.quick, threads=args.threads)


def eval_cost(args: argparse.Namespace) -> dict[str, Any]:
    import eval_cost

    return eval_cost.run(quick=args.quick, threads=args.threads)


def registry(args: argparse.Namespace) -> dict[str, Any]:
    import registry_scale

    if args.quick:
        return registry_scale.run(repeat=1, versions=500, register=20)
    return registry_scale.run()


COLD_COMMANDS = {"adapters --help": ["--help"], "adapters list (empty registry)": ["list"]}


def cold(args: argparse.Namespace, done: dict[str, Any]) -> dict[str, Any]:
    """Reuse the registry section's cold-start figures when it ran; measure just these otherwise."""
    if "registry" in done:
        measured = {label: done["registry"]["cold_seconds"][label] for label in COLD_COMMANDS}
    else:
        import tempfile

        import registry_scale

        with tempfile.TemporaryDirectory(prefix="loraledger-cold-") as scratch:
            measured = {}
            for label, command in COLD_COMMANDS.items():
                wall, cpu = registry_scale.cold(Path(scratch), command, 1 if args.quick else 5)
                measured[label] = {"wall": wall, "cpu": cpu}
    return {"benchmark": "cold_start", "seconds": measured, "target_seconds": COLD_TARGET}


def dashboard(args: argparse.Namespace) -> dict[str, Any]:
    import dashboard_scale

    if args.quick:
        return dashboard_scale.run(repeat=1, versions=500)
    return dashboard_scale.run()


def publish(args: argparse.Namespace) -> dict[str, Any]:
    import publish_roundtrip

    # It points the Hub client and ADAPTERS_* at its own temporary folders: put the environment back.
    saved = dict(os.environ)
    try:
        return publish_roundtrip.run()
    finally:
        os.environ.clear()
        os.environ.update(saved)


def serve(args: argparse.Namespace) -> dict[str, Any]:
    import serve_latency

    if args.quick:
        return serve_latency.run(requests=4, swaps=1)
    return serve_latency.run()


def throughput(args: argparse.Namespace) -> dict[str, Any]:
    import train_throughput

    if args.quick:
        return train_throughput.run(epochs=0.02, quantize=("none",))
    return train_throughput.run()


def retention(args: argparse.Namespace) -> dict[str, Any]:
    import retention as retention_budget

    return retention_budget.run(quick=args.quick, threads=args.threads or 1)


# ---- the one table ---------------------------------------------------------------------------------


def row(measure: str, result: str, target: str = "-", status: str = "") -> Row:
    return {"measure": measure, "result": result, "target": target, "status": status}


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def training_rows(results: dict[str, Any]) -> list[Row]:
    rows = []
    for name, summary in results["summary"].items():
        sizes = results["datasets"][name]
        seed, ours = summary["seed"], summary["ours"]
        target = results["targets"][f"{name}_speedup"]
        checks = summary["checks"]
        label = f"training {name} ({sizes['rows']} rows of ~{sizes['mean_tokens']:.0f} tokens)"
        rounds = ", ".join(f"{r['cpu']:.2f}x" for r in summary["speedup_per_round"])
        rows += [
            row(
                f"{label}: real tokens per CPU-s",
                f"seed {seed['tokens_per_cpu_second']:,.0f}, ours {ours['tokens_per_cpu_second']:,.0f}: "
                f"{summary['speedup_cpu']:.2f}x (rounds {rounds})",
                f">= {target:g}x, never < 1x",
                verdict(checks[f"speedup >= {target}x (CPU time)"] and checks["never slower (every round)"]),
            ),
            row(
                f"training {name}: real tokens per second (wall)",
                f"seed {seed['tokens_per_second']:,.0f}, ours {ours['tokens_per_second']:,.0f}: "
                f"{summary['speedup']:.2f}x",
                f">= {target:g}x",
                verdict(checks[f"speedup >= {target}x (wall time)"]),
            ),
            row(
                f"training {name}: tokens dropped",
                f"seed {seed['dropped_tokens']:,} of {sizes['seed_tokens']:,}, "
                f"ours {ours['dropped_tokens']:,}",
                "ours 0",
                verdict(checks["no token dropped"]),
            ),
            row(
                f"training {name}: held-out NLL (base {results['eval']['base_nll']:.4f})",
                f"seed {seed['heldout_nll']:.4f}, ours {ours['heldout_nll']:.4f} "
                f"({summary['heldout_nll_change']:+.1%})",
                "<= seed +2%",
                verdict(checks[f"held-out loss within {results['targets']['heldout_loss_tolerance']:.0%}"]),
            ),
            row(
                f"training {name}: peak RSS; optimizer steps",
                f"seed {seed['peak_rss_mb']:,.0f} MB, ours {ours['peak_rss_mb']:,.0f} MB; "
                f"seed {seed['steps']}, ours {ours['steps']}",
            ),
        ]
    return rows


def peer_rows(results: dict[str, Any]) -> list[Row]:
    """Issue 15: ours against every peer of the session (seed, seed-cut, TRL's two packings)."""
    rows = []
    for name, summary in results["summary"].items():
        peers = summary["peers"]
        figures = ", ".join(
            f"{tool} {run['tokens_per_cpu_second']:,.0f} ({run['dropped_tokens']:,} dropped, "
            f"NLL {run['heldout_nll']:.4f}, {run['peak_rss_mb']:,.0f} MB)"
            for tool, run in ((tool, summary[tool]) for tool in [*peers["speedup_cpu"], "ours"])
        )
        targets = results["peer_targets"][name]
        rows.append(
            row(
                f"training {name} vs peers: real tokens per CPU-s",
                figures + "; ours " + ", ".join(f"{r:.2f}x {t}" for t, r in peers["speedup_cpu"].items()),
                ", ".join(f">= {target:g}x {tool}" for tool, target in targets.items())
                + f"; 0 dropped; NLL <= best peer +{results['peer_targets']['heldout_vs_best_peer']:.0%}",
                verdict(all(peers["checks"].values())),
            )
        )
    return rows


def real_model_rows(results: dict[str, Any]) -> list[Row]:
    if "skipped" in results:
        return [row("real model (SmolLM2-135M GGUF)", f"skipped: {results['skipped']}")]
    summary, runs = results["summary"], results["runs"]
    fp32 = runs["fp32"]
    rows = [
        row(
            f"real model fp32 ({results['rows']} rows, max_length {results['max_length']})",
            f"{fp32['tokens_per_second']:,.0f} tokens/s, {fp32['tokens_per_cpu_second']:,.0f} per CPU-s, "
            f"peak RSS {fp32['peak_rss_mb']:,.0f} MB",
        ),
        row(
            "real model: held-out NLL before -> after; general text (forgetting)",
            f"{summary['heldout_nll_before']:.4f} -> {summary['heldout_nll_after']:.4f}; "
            f"{summary['general_nll_before']:.4f} -> {summary['general_nll_after']:.4f} "
            f"({summary['forgetting']:+.2%})",
        ),
    ]
    target = results["targets"]["bf16_speedup"]
    if "bf16_speedup_cpu" in summary:
        rows.append(
            row(
                "real model: bf16 autocast vs fp32 (tokens per CPU-s; held-out NLL)",
                f"{summary['bf16_speedup_cpu']:.2f}x; {summary['bf16_nll_change']:+.2%}",
                f">= {target:g}x; within 1%",
                verdict(summary["bf16_speedup_cpu"] >= target and abs(summary["bf16_nll_change"]) <= 0.01),
            )
        )
    else:
        rows.append(
            row(
                "real model: bf16 autocast vs fp32",
                "not measured: this CPU has no native bf16",
                f">= {target:g}x",
            )
        )
    return rows


def eval_rows(results: dict[str, Any]) -> list[Row]:
    train, evaluation, share = (
        results["train_seconds"],
        results["eval_seconds"],
        results["eval_share_of_train"],
    )
    return [
        row(
            f"eval: {results['base']} version 1 on its suite ({', '.join(results['suite'])}) vs training it",
            f"eval {evaluation['cpu']:.1f} CPU-s vs train {train['cpu']:.1f} CPU-s: {share['cpu']:.1%} "
            f"(wall {evaluation['wall']:.1f} s vs {train['wall']:.1f} s: {share['wall']:.1%})",
            f"<= {results['target_share']:.0%}",
            verdict(results["met"]),
        )
    ]


def registry_rows(results: dict[str, Any]) -> list[Row]:
    sizes, register, targets = results["registry"], results["register"], results["targets_seconds"]
    rows = [
        row(
            f"registry: register {register['versions']:,} versions (Registry.register)",
            f"{register['seconds']:.1f} s ({register['per_version_ms']:.1f} ms each)",
        )
    ]
    scale = f"{sizes['versions']:,} versions, {sizes['evals']:,} evals"
    for label, timing in results["cold_seconds"].items():
        if label in COLD_COMMANDS:
            continue  # in the cold-start section
        target = targets["list"] if " list" in label else targets["show"] if " show" in label else None
        rows.append(
            row(
                f"registry ({scale}): {label}, new process",
                f"{timing['wall']:.2f} s (CPU {timing['cpu']:.2f} s)",
                f"< {target:g} s" if target else "-",
                verdict(timing["wall"] < target) if target else "",
            )
        )
    for label, timing in results["in_process_seconds"].items():
        rows.append(row(f"registry ({scale}): {label}, in process", f"{timing['wall']:.3f} s"))
    return rows


def cold_rows(results: dict[str, Any]) -> list[Row]:
    target = results["target_seconds"]
    return [
        row(
            f"cold start: {label}",
            f"{timing['wall']:.2f} s (CPU {timing['cpu']:.2f} s)",
            f"< {target:g} s",
            verdict(timing["wall"] < target)
            if timing["wall"] < target or timing["cpu"] >= target
            else "MISSED (wall; CPU met: the machine was busy)",
        )
        for label, timing in results["seconds"].items()
    ]


def _wall_verdict(timing: dict[str, float], target: float) -> str:
    if timing["wall"] < target or timing["cpu"] >= target:
        return verdict(timing["wall"] < target)
    return "MISSED (wall; CPU met: the machine was busy)"


def dashboard_rows(results: dict[str, Any]) -> list[Row]:
    sizes, target = results["registry"], results["target_seconds"]
    scale = f"{sizes['versions']:,} versions, {sizes['evals']:,} evals"
    return [
        row(
            f"dashboard ({scale}): {label}",
            f"{timing['wall']:.2f} s (CPU {timing['cpu']:.2f} s)",
            f"< {target:g} s" if label in results["checked"] else "-",
            _wall_verdict(timing, target) if label in results["checked"] else "",
        )
        for label, timing in results["seconds"].items()
    ]


def publish_rows(results: dict[str, Any]) -> list[Row]:
    stack = results["stack_independent_max_logit_diff"]
    merge = (results["merge_fp32_max_logit_diff"], results["merge_bf16_saved_max_logit_diff"])
    adapter = (results["roundtrip_adapter_seconds"], results["roundtrip_adapter_bytes"] / 1e3)
    merged = (results["roundtrip_merged_seconds"], results["roundtrip_merged_bytes"] / 1e6)
    return [
        row("publish: stack (cat) vs both adapters applied, max logit diff", f"{stack:.1e}"),
        row("publish: merge fp32 / bf16 (saved), max logit diff", f"{merge[0]:.1e} / {merge[1]:.1e}"),
        row(
            "publish: push + download, adapter / merged (loopback Hub)",
            f"{adapter[0]:.2f} s ({adapter[1]:,.0f} kB) / {merged[0]:.2f} s ({merged[1]:,.1f} MB)",
        ),
    ]


def serve_rows(results: dict[str, Any]) -> list[Row]:
    import serve_latency

    return [row(measure, result) for measure, result in serve_latency.rows(results)]


def throughput_rows(results: dict[str, Any]) -> list[Row]:
    return [
        row(
            f"trainer alone, {results['base']} {run['quantize']}: real tokens per s / per CPU-s",
            f"{run['tokens_per_second']:,.0f} / {run['tokens_per_cpu_second']:,.0f} "
            f"(padding {run['padding_share']:.1%})",
        )
        for run in results["runs"]
    ]


def retention_rows(results: dict[str, Any]) -> list[Row]:
    rows = []
    for pair, found in results["pairs"].items():
        forgot = found["chosen_forgetting"] or {}
        rows.append(
            row(
                f"retention {results['budget']:.0%}, {pair}: chosen forgetting per set (raw update's)",
                ", ".join(
                    f"{label} {value:+.1%} ({found['raw_forgetting'].get(label, 0):+.1%})"
                    for label, value in forgot.items()
                )
                or found["remedy"],
                f"<= {results['budget']:.0%} on every set",
                verdict(found["within_budget_on_every_set"]),
            )
        )
        rows.append(
            row(
                f"retention, {pair}: gain kept at alpha {found['alpha']}",
                f"{(found['gain_share_kept'] or 0):.0%}",
                ">= 50% (floor)",
            )
        )
        share = found["search_share_cpu"] or found["search_share_wall"] or 0.0
        rows.append(
            row(
                f"retention, {pair}: strength search / training, CPU (wall), {found['candidates']} tries",
                f"{share:.0%} ({found['search_share_wall'] or 0:.0%})",
                f"< {results['target_search_share']:.0%}",
                verdict(share < results["target_search_share"]),
            )
        )
    return rows


RUNNERS: dict[str, Callable[..., dict[str, Any]]] = {
    "training": training,
    "real-model": real_model,
    "eval": eval_cost,
    "registry": registry,
    "dashboard": dashboard,
    "publish": publish,
    "serve": serve,
    "throughput": throughput,
    "retention": retention,
}
ROWS: dict[str, Callable[[dict[str, Any]], list[Row]]] = {
    "training": lambda results: training_rows(results) + peer_rows(results),
    "real-model": real_model_rows,
    "eval": eval_rows,
    "registry": registry_rows,
    "cold": cold_rows,
    "dashboard": dashboard_rows,
    "publish": publish_rows,
    "serve": serve_rows,
    "throughput": throughput_rows,
    "retention": retention_rows,
}


def render(table: list[Row]) -> str:
    widths = {key: max(len(key), *(len(r[key]) for r in table)) for key in ("measure", "result", "target")}
    header = row("measure", "result", "target", "status")
    lines = []
    for entry in [header, *table]:
        lines.append(
            f"{entry['measure']:<{widths['measure']}}  {entry['result']:<{widths['result']}}  "
            f"{entry['target']:<{widths['target']}}  {entry['status']}".rstrip()
        )
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    from importlib import metadata

    def first(path: str, key: str) -> str | None:
        try:
            for line in Path(path).read_text().splitlines():
                if line.startswith(key):
                    return line.split(":", 1)[1].strip()
        except OSError:
            return None
        return None

    memory = first("/proc/meminfo", "MemTotal")
    versions = {}
    for name in ("torch", "transformers", "peft"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return {
        "cpus": os.cpu_count(),
        "cpu_model": first("/proc/cpuinfo", "model name") or platform.processor(),
        "memory_gib": round(int(memory.split()[0]) / 1024**2, 1) if memory else None,
        "python": platform.python_version(),
        **versions,
        "gpu": "none: the GPU rows (bf16 and 4-bit on a larger model) are not measured",
        "load_average": os.getloadavg(),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--only",
        default=",".join(DEFAULT_SECTIONS),
        help=f"Comma-separated sections to run, of: {', '.join(SECTIONS)} (default: all but throughput).",
    )
    parser.add_argument("--quick", action="store_true", help="Tiny sizes: a smoke run, figures meaningless.")
    parser.add_argument("--rounds", type=int, help="Alternating training rounds per tool (default 2).")
    parser.add_argument("--threads", type=int, default=1, help="Torch threads per training (0: default).")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="Where to write the results.")
    args = parser.parse_args(argv)
    chosen = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = sorted(set(chosen) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}: choose from {', '.join(SECTIONS)}")

    started = time.perf_counter()
    before = machine()
    done: dict[str, Any] = {}
    seconds: dict[str, float] = {}
    for section in (s for s in SECTIONS if s in chosen):  # registry before cold, publish late
        print(f"running {section} ...", file=sys.stderr, flush=True)
        clock = time.perf_counter()
        done[section] = cold(args, done) if section == "cold" else RUNNERS[section](args)
        seconds[section] = time.perf_counter() - clock
    table = [entry for section in done for entry in ROWS[section](done[section])]
    command = " ".join(["benchmarks/run.py", *(sys.argv[1:] if argv is None else argv)])
    results = {
        "command": command,
        "quick": args.quick,
        "sections": done,
        "section_seconds": seconds,
        "seconds": time.perf_counter() - started,
        "machine": before | {"load_average_after": os.getloadavg()},
        "table": table,
    }
    print(render(table))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"\nwritten to {args.json} ({results['seconds']:.0f} s)", file=sys.stderr)
    return results


if __name__ == "__main__":
    main()

"""Registry at scale: 10,000 versions and 50,000 eval results.

    .venv/bin/python benchmarks/registry_scale.py [--db URL] [--json PATH] [--repeat N]

Builds a registry the size of a busy team's after years of continual updates (bulk inserts: building it
through ``Registry.register`` would take minutes and measure nothing new), then measures:

- registering 1,000 versions through ``Registry.register`` (the path ``adapters train`` takes);
- ``versions`` / ``resolve`` / ``lineage`` in process on the big registry;
- cold ``adapters --help``, ``adapters list``, ``adapters list NAME``, ``adapters show REF`` and
  ``adapters lineage NAME`` as subprocesses (what a user waits for), best of ``--repeat`` runs, with
  the child's CPU time beside the wall time (on a shared machine the wall time includes waiting).

Targets (issue 3): ``list`` and ``show`` on the big registry under 1 s; ``--help`` and ``list`` cold
start under 0.5 s. Prints a table and writes JSON (default build/benchmarks/registry_scale.json).
``run()`` returns the same dict, for benchmarks/run.py.
"""

import argparse
import io
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DEFAULT_JSON = REPO / "build" / "benchmarks" / "registry_scale.json"

VERSIONS = 10_000
EVALS_PER_VERSION = 5
ADAPTERS = 50
BIG = "legal"  # half of all versions, one long lineage with a rollback branch every 50 versions
REGISTER = 1_000
TARGETS = {"list": 1.0, "show": 1.0, "cold_help": 0.5, "cold_list_empty": 0.5}


# ---- building ------------------------------------------------------------------------------------


def build(db_url: str, store_url: str, versions: int = VERSIONS) -> dict[str, int]:
    """Fill an empty (migrated) registry with ``versions`` versions and ``versions * EVALS_PER_VERSION``
    evals."""
    from sqlalchemy import insert, text

    from loraledger.registry import Registry
    from loraledger.registry.tables import (
        AdapterRow,
        AliasEventRow,
        AliasRow,
        BaseModelRow,
        DatasetRow,
        EvalResultRow,
        VersionDatasetRow,
        VersionRow,
    )

    registry = Registry.open(db_url, store_url, user="bench", host="bench")
    with tempfile.TemporaryDirectory() as scratch:
        (Path(scratch) / "adapter_config.json").write_text('{"r": 16}')
        artifact = registry.put_artifact(Path(scratch))
    engine = registry.store.engine  # type: ignore[attr-defined]
    start = datetime(2026, 1, 1, tzinfo=UTC)

    def digest(kind: str, i: int) -> str:  # kind: one hex letter, so each family of digests is apart
        return f"sha256:{kind}{i:063x}"

    names = [BIG] + [f"team-{i:02d}" for i in range(1, ADAPTERS)]
    sizes = {BIG: versions // 2}
    rest = versions - sizes[BIG]
    for index, name in enumerate(names[1:]):
        sizes[name] = rest // (ADAPTERS - 1) + (1 if index < rest % (ADAPTERS - 1) else 0)

    adapters, versions, datasets, links, evals, aliases, events = [], [], [], [], [], [], []
    eval_sets: dict[str, list[int]] = {}
    version_id = dataset_id = 0
    for adapter_id, name in enumerate(names, start=1):
        adapters.append({"id": adapter_id, "name": name, "max_regression": 0.05, "created_at": start})
        eval_sets[name] = []
        for _ in range(EVALS_PER_VERSION):
            dataset_id += 1
            eval_sets[name].append(dataset_id)
            datasets.append(_dataset(dataset_id, digest("e", dataset_id), start))
        ids: dict[int, int] = {}
        current = 0
        for number in range(1, sizes[name] + 1):
            version_id += 1
            dataset_id += 1
            ids[number] = version_id
            # Every 50th version was rolled back: the next one continues from its parent instead.
            parent = number - 2 if number > 2 and (number - 1) % 50 == 0 else number - 1
            moment = start + timedelta(minutes=version_id)
            versions.append(
                {
                    "id": version_id,
                    "adapter_id": adapter_id,
                    "number": number,
                    "kind": "train",
                    "parent_id": ids.get(parent),
                    "base_model_id": 1,
                    "lora": {"r": 16, "alpha": 32, "dropout": 0.05, "target_modules": ["q_proj", "v_proj"]},
                    "training": {"learning_rate": 2e-4, "epochs": 1.0, "max_length": 1024, "replay": 0.1},
                    "seed": number,
                    "libraries": {"torch": "2.13.0", "transformers": "5.24.0", "peft": "0.21.2"},
                    "train_tokens": 100_000 + number,
                    "final_loss": 2.0 - number / 10_000,
                    "artifact_digest": artifact,
                    "created_at": moment,
                    "created_by": "bench",
                    "host": "bench",
                    "note": None,
                }
            )
            datasets.append(_dataset(dataset_id, digest("d", dataset_id), moment))
            links.append(_link(version_id, dataset_id, "train"))
            links.append(_link(version_id, eval_sets[name][0], "eval"))
            for eval_dataset in eval_sets[name]:
                evals.append(
                    {
                        "version_id": version_id,
                        "base_model_id": None,
                        "dataset_id": eval_dataset,
                        "metric": "nll",
                        "value": 2.0 + (eval_dataset % 7) / 10 - number / 100_000,
                        "setting": "fp32 w512/s256",
                        "label": f"eval set {eval_dataset}",
                        "created_at": moment,
                    }
                )
            rolled_back = (number - 1) % 50 == 0 and number > 2
            events.append(_event(adapter_id, ids.get(current), version_id, "trained", moment))
            if rolled_back:
                events.append(_event(adapter_id, version_id, ids[number - 1], "rollback", moment))
                current = number - 1
            else:
                current = number
        aliases.append({"adapter_id": adapter_id, "name": "current", "version_id": ids[current]})
        aliases.append({"adapter_id": adapter_id, "name": "champion", "version_id": ids[max(1, current - 3)]})

    with engine.begin() as connection:
        connection.execute(
            insert(BaseModelRow.__table__),  # type: ignore[arg-type]
            [
                {
                    "id": 1,
                    "fingerprint": "meta-llama/Llama-3.1-8B|abc|cfg|w",
                    "model_id": "meta-llama/Llama-3.1-8B",
                    "revision": "0e9e39f249a16976918f6564b8830bc894c89659",
                    "config_digest": digest("c", 1),
                    "weights_digest": None,
                }
            ],
        )
        for table, rows in (
            (AdapterRow, adapters),
            (DatasetRow, datasets),
            (VersionRow, versions),
            (VersionDatasetRow, links),
            (EvalResultRow, evals),
            (AliasRow, aliases),
            (AliasEventRow, events),
        ):
            connection.execute(insert(table.__table__), rows)  # type: ignore[attr-defined]
        if connection.dialect.name == "postgresql":  # explicit ids leave the sequences behind
            for table in ("adapter", "base_model", "dataset", "version"):
                sequence = f"pg_get_serial_sequence('{table}', 'id')"
                connection.execute(text(f"SELECT setval({sequence}, (SELECT max(id) FROM {table}))"))
        connection.exec_driver_sql("ANALYZE")  # what a long-lived registry's statistics look like
    engine.dispose()
    return {"versions": len(versions), "evals": len(evals), "datasets": len(datasets), "adapters": len(names)}


def _dataset(dataset_id: int, digest: str, moment: datetime) -> dict[str, Any]:
    return {
        "id": dataset_id,
        "digest": digest,
        "format": "jsonl",
        "rows": 1000,
        "tokens": 100_000,
        "source": f"s3://corpora/legal/batch-{dataset_id}.jsonl",
        "blob": None,
        "created_at": moment,
    }


def _link(version_id: int, dataset_id: int, role: str) -> dict[str, Any]:
    return {"version_id": version_id, "dataset_id": dataset_id, "role": role, "rows": 1000, "tokens": None}


def _event(adapter_id: int, before: int | None, after: int, reason: str, moment: datetime) -> dict[str, Any]:
    return {
        "adapter_id": adapter_id,
        "alias": "current",
        "from_version_id": before,
        "to_version_id": after,
        "reason": reason,
        "created_by": "bench",
        "created_at": moment,
    }


# ---- measuring -----------------------------------------------------------------------------------


def best_of(repeat: int, action: Callable[[], Any]) -> dict[str, float]:
    """Best wall and best CPU seconds of ``repeat`` runs (on a shared machine the wall time includes
    waiting for a core; the CPU time is what the code costs)."""
    walls, cpus = [], []
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        action()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return {"wall": min(walls), "cpu": min(cpus)}


def register_many(db_url: str, store_url: str, count: int) -> float:
    """Seconds to register ``count`` versions (a chain, each with a dataset and 5 evals)."""
    from loraledger.registry import Registry
    from loraledger.registry.digests import tag
    from loraledger.schemas.records import BaseModelRecord, NewDataset, NewDatasetUse, NewEval, NewVersion

    registry = Registry.open(db_url, store_url, user="bench", host="bench")
    base = BaseModelRecord(model_id="builtin:tiny", config_digest=tag("c" * 64), weights_digest=tag("d" * 64))
    with tempfile.TemporaryDirectory() as scratch:
        (Path(scratch) / "adapter_config.json").write_text('{"r": 8}')
        artifact = registry.put_artifact(Path(scratch))
    suite = [NewDataset(digest=tag(f"{i:064x}"), format="jsonl", rows=10) for i in range(EVALS_PER_VERSION)]
    start = time.perf_counter()
    parent = None
    for number in range(1, count + 1):
        data = NewDataset(digest=tag(f"{number + 100:064x}"), format="jsonl", rows=100)
        version = registry.register(
            NewVersion(
                name="fresh",
                kind="train",
                parent=parent,
                base=base,
                lora={"r": 8},
                training={"learning_rate": 2e-4},
                artifact_digest=artifact,
                datasets=[NewDatasetUse(dataset=data, role="train", rows=100)],
                evals=[
                    NewEval(dataset=d, metric="nll", value=2.0, setting="fp32 w512/s256", label=f"set {i}")
                    for i, d in enumerate(suite)
                ],
            )
        )
        parent = version.ref
    elapsed = time.perf_counter() - start
    registry.store.engine.dispose()  # type: ignore[attr-defined]
    return elapsed


def in_process(db_url: str, store_url: str, repeat: int) -> dict[str, dict[str, float]]:
    """What each command does once its process has started: the registry calls plus drawing."""
    from rich.console import Console

    from loraledger.cli.render import lineage_tree, version_detail, version_json, versions_table
    from loraledger.registry import Registry

    registry = Registry.open(db_url, store_url, user="bench", host="bench")
    console = Console(file=io.StringIO(), width=80, force_terminal=True, color_system="standard")
    small = "team-07"

    def draw(renderable: Any) -> None:
        console.file = io.StringIO()
        console.print(renderable)

    results = {
        "list (all versions)": best_of(repeat, lambda: draw(versions_table(registry.summaries()))),
        f"list {BIG}": best_of(repeat, lambda: draw(versions_table(registry.summaries(BIG)))),
        "list --json (all versions, every field)": best_of(
            repeat,
            lambda: json.dumps([version_json(v, full=False) for v in registry.versions()], default=str),
        ),
        f"show {BIG}": best_of(repeat, lambda: draw(version_detail(registry.resolve(BIG)))),
        f"show {small}@3": best_of(repeat, lambda: draw(version_detail(registry.resolve(f"{small}@3")))),
        f"show {BIG}@9999 (refused, lists what exists)": best_of(
            repeat, lambda: _refused(registry, f"{BIG}@9999")
        ),
        f"lineage {BIG}": best_of(repeat, lambda: draw(lineage_tree(BIG, registry.lineage(BIG)))),
        f"history {BIG}": best_of(repeat, lambda: registry.history(BIG)),
    }
    registry.store.engine.dispose()  # type: ignore[attr-defined]
    return results


def _refused(registry: Any, ref: str) -> None:
    from loraledger.schemas.errors import NotFound

    try:
        registry.resolve(ref)
    except NotFound:
        return
    raise AssertionError(f"{ref} resolved")


def cold(home: Path, args: list[str], repeat: int) -> tuple[float, float]:
    """Best wall time and best CPU time (user + system) of ``adapters ARGS`` in a new process."""
    script = Path(sys.executable).parent / "adapters"
    command = (
        [str(script)]
        if script.exists()
        else [sys.executable, "-c", "from loraledger.cli.main import main; main()"]
    )
    env = {**os.environ, "ADAPTERS_HOME": str(home), "COLUMNS": "120"}
    env.pop("ADAPTERS_DB", None)
    walls, cpus = [], []
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run([*command, *args], env=env, check=True, stdout=subprocess.DEVNULL)
        walls.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return min(walls), min(cpus)


def run(
    db_url: str | None = None, repeat: int = 3, versions: int = VERSIONS, register: int = REGISTER
) -> dict[str, Any]:
    """Build the big registry, measure, return the figures (also what ``main`` prints and saves).

    Smaller ``versions`` and ``register`` make a smoke run (benchmarks/run.py --quick)."""
    scratch = Path(tempfile.mkdtemp(prefix="loraledger-scale-"))
    try:
        home = scratch / "home"
        url = db_url or f"sqlite:///{home / 'registry.db'}"
        store = str(home / "artifacts")
        start = time.perf_counter()
        sizes = build(url, store, versions)
        built = time.perf_counter() - start

        registered = register_many(f"sqlite:///{scratch / 'fresh.db'}", str(scratch / "fresh"), register)
        measured = in_process(url, store, repeat)
        empty = scratch / "empty"
        cold_runs = {
            "adapters --help": cold(empty, ["--help"], repeat),
            "adapters list (empty registry)": cold(empty, ["list"], repeat),
        }
        if db_url is None:  # the CLI reads the big registry from its home
            cold_runs |= {
                f"adapters list ({sizes['versions']:,} versions)": cold(home, ["list"], repeat),
                f"adapters list {BIG}": cold(home, ["list", BIG], repeat),
                "adapters list --json": cold(home, ["list", "--json"], repeat),
                f"adapters show {BIG}": cold(home, ["show", BIG], repeat),
                "adapters show team-07@3": cold(home, ["show", "team-07@3"], repeat),
                f"adapters lineage {BIG}": cold(home, ["lineage", BIG], repeat),
            }
        return {
            "benchmark": "registry_scale",
            "database": "postgresql" if db_url and db_url.startswith("postgresql") else "sqlite",
            "registry": sizes,
            "build_seconds": built,
            "register": {
                "versions": register,
                "seconds": registered,
                "per_version_ms": 1000 * registered / register,
            },
            "in_process_seconds": measured,
            "cold_seconds": {label: {"wall": wall, "cpu": cpu} for label, (wall, cpu) in cold_runs.items()},
            "targets_seconds": TARGETS,
            "machine": {"cpus": os.cpu_count(), "load_average": os.getloadavg()},
        }
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def render(results: dict[str, Any]) -> str:
    sizes = results["registry"]
    lines = [
        f"registry: {sizes['versions']:,} versions, {sizes['evals']:,} eval results, "
        f"{sizes['datasets']:,} datasets, {sizes['adapters']} adapters "
        f"({results['database']}; built in {results['build_seconds']:.1f} s)",
        f"load average during the run: {', '.join(f'{x:.1f}' for x in results['machine']['load_average'])} "
        f"on {results['machine']['cpus']} CPUs",
        "",
        f"{'measure':<44} {'wall s':>8} {'cpu s':>8}",
    ]
    register = results["register"]
    lines.append(
        f"{'register ' + format(register['versions'], ',') + ' versions':<44} {register['seconds']:>8.2f} "
        f"{'':>8}  ({register['per_version_ms']:.1f} ms each)"
    )
    for label, timing in results["in_process_seconds"].items():
        lines.append(f"{'in process: ' + label:<44} {timing['wall']:>8.3f} {timing['cpu']:>8.3f}")
    for label, timing in results["cold_seconds"].items():
        lines.append(f"{'cold: ' + label:<44} {timing['wall']:>8.3f} {timing['cpu']:>8.3f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--db", help="Database URL to build in (empty, migrated); default: a temporary SQLite file."
    )
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="Where to write the results.")
    parser.add_argument("--repeat", type=int, default=3, help="Runs per measure; the best is kept.")
    args = parser.parse_args()
    results = run(args.db, args.repeat)
    print(render(results))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwritten to {args.json}")


if __name__ == "__main__":
    main()

"""Artifact store: storing, dedup, `verify` and `gc` on a registry of many adapters.

    .venv/bin/python benchmarks/integrity.py [--versions N] [--adapter-mb MB] [--s3-versions N] [--json PATH]

Registers ``--versions`` versions whose adapters hold ``--adapter-mb`` MB of weights each (random bytes:
nothing to compress or share) through ``Registry.register``, then measures:

- storing one adapter, and storing it again (dedup: the second time writes nothing);
- ``verify`` of everything (every blob re-hashed) and of one version;
- ``gc`` listing with a hundred orphans among the stored objects;
- the same on S3 (moto's server on loopback, ``--s3-versions`` versions) when moto is installed.

Prints a table and writes JSON (default build/benchmarks/integrity.json). ``run()`` returns the dict.
"""

import argparse
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DEFAULT_JSON = REPO / "build" / "benchmarks" / "integrity.json"


def _timed(action: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = action()
    return time.perf_counter() - started, result


def _adapter(folder: Path, weights: bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "adapter_model.safetensors").write_bytes(weights)
    (folder / "adapter_config.json").write_text('{"r": 16, "lora_alpha": 32}\n')
    return folder


def measure(store_url: str, db_url: str, versions: int, adapter_bytes: int, scratch: Path) -> dict[str, Any]:
    from loraledger.registry import Registry
    from loraledger.registry.digests import bytes_digest
    from loraledger.schemas.records import BaseModelRecord, NewVersion

    registry = Registry.open(db_url, store_url, user="bench", host="bench")
    base = BaseModelRecord(model_id="builtin:tiny", config_digest=bytes_digest(b"c"), weights_digest=None)
    store_seconds = []
    parent = None
    for number in range(1, versions + 1):
        folder = _adapter(scratch / f"v{number}", os.urandom(adapter_bytes))
        seconds, artifact = _timed(lambda folder=folder: registry.put_artifact(folder))
        store_seconds.append(seconds)
        shutil.rmtree(folder)
        new = NewVersion(name="ip", kind="train", parent=parent, base=base, artifact_digest=artifact)
        parent = registry.register(new).ref

    objects_before = len(registry.artifacts.objects())
    same = _adapter(scratch / "same", os.urandom(adapter_bytes))
    first, digest = _timed(lambda: registry.put_artifact(same))
    again, digest_again = _timed(lambda: registry.put_artifact(same))
    assert digest == digest_again
    added = len(registry.artifacts.objects()) - objects_before  # manifest + weights; config is shared

    verify_all, report = _timed(registry.verify)
    assert report.ok, report.problems
    verify_one, _ = _timed(lambda: registry.verify("ip@1"))
    for index in range(100):
        registry.artifacts.put_bytes(f"orphan {index}".encode())
    gc_list, garbage = _timed(lambda: registry.garbage(min_age_seconds=0))
    return {
        "versions": versions,
        "adapter_mb": adapter_bytes / 1e6,
        "store_adapter_s": sorted(store_seconds)[len(store_seconds) // 2],
        "store_again_s": again,
        "store_first_s": first,
        "objects_added_by_two_identical_adapters": added,
        "verify_all_s": verify_all,
        "verify_all_mb_per_s": report.bytes / 1e6 / verify_all,
        "verify_blobs": report.blobs,
        "verify_one_s": verify_one,
        "gc_list_s": gc_list,
        "gc_found": len(garbage.collectable),  # the 100 orphans + the dedup probe's manifest and weights
    }


@contextmanager
def _moto() -> Iterator[str | None]:
    try:
        import boto3
        from moto.server import ThreadedMotoServer
    except ImportError:
        yield None
        return
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    saved = dict(os.environ)
    os.environ.update(
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ENDPOINT_URL_S3=endpoint,
        AWS_EC2_METADATA_DISABLED="true",
    )
    try:
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="bench")
        yield "s3://bench/registry"
    finally:
        os.environ.clear()
        os.environ.update(saved)
        server.stop()


def run(versions: int = 200, adapter_mb: float = 4.0, s3_versions: int = 20) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="loraledger-bench-") as scratch:
        root = Path(scratch)
        results["local"] = measure(
            str(root / "artifacts"), f"sqlite:///{root / 'local.db'}", versions, int(adapter_mb * 1e6), root
        )
        with _moto() as s3_url:
            if s3_url and s3_versions:
                results["s3"] = measure(
                    s3_url, f"sqlite:///{root / 's3.db'}", s3_versions, int(adapter_mb * 1e6), root
                )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--versions", type=int, default=200)
    parser.add_argument("--adapter-mb", type=float, default=4.0)
    parser.add_argument("--s3-versions", type=int, default=20)
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON)
    args = parser.parse_args()
    results = run(args.versions, args.adapter_mb, args.s3_versions)
    for store, figures in results.items():
        print(f"[{store}]")
        for key, value in figures.items():
            print(f"  {key:42} {value:.4g}" if isinstance(value, float) else f"  {key:42} {value}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()

"""The artifact store on S3 (moto's server on loopback): configured by `ADAPTERS_STORE=s3://...` alone,
credentials and endpoint coming from the environment as for any AWS tool."""

import json
from pathlib import Path
from typing import Any

import pytest
from support import cli_process
from support.seeding import seed_version

from loraledger.registry import Registry
from loraledger.settings import Settings

TEXTS = [f"Clause {i}: the licensee shall keep every notice intact, word {i}." for i in range(40)]


@pytest.fixture
def s3_store(s3_bucket: tuple[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch) -> str:
    bucket, _options = s3_bucket
    url = f"s3://{bucket}/team/registry"
    monkeypatch.setenv("ADAPTERS_STORE", url)
    return url


def bucket_keys(registry: Registry) -> list[str]:
    return sorted(
        str(path).split("/team/registry/", 1)[1]
        for path in registry.artifacts.fs.find(registry.artifacts.root)
    )


def test_registry_on_s3_verify_and_gc(adapters, s3_store: str, home: Path, tmp_path: Path) -> None:
    registry = Settings.load().open_registry()
    assert registry.artifacts.url == s3_store and not registry.artifacts.local
    seed_version(registry, "ip", weights=b"one")
    seed_version(registry, "ip", weights=b"two", parent="ip@1")
    seed_version(registry, "tax", weights=b"two")  # the same adapter as ip@2: stored once
    keys = bucket_keys(registry)
    assert sum(key.startswith("manifests/") for key in keys) == 2
    assert sum(key.startswith("blobs/") for key in keys) == 2 + 1 + 3  # weights, shared config, data
    assert not (home / "artifacts").exists()  # nothing went to the local folder

    assert json.loads(adapters("verify", "--json").stdout)["ok"] is True
    # A fresh process finds the bucket from the environment alone.
    fresh = cli_process.run("verify", workdir=tmp_path / "verify")
    assert fresh.returncode == 0 and fresh.stdout.startswith("ok: checked 2 artifact(s)"), fresh.stderr
    registry.checkout("tax", tmp_path / "checkout")
    assert (tmp_path / "checkout" / "adapter_model.safetensors").read_bytes() == b"two"

    orphan = registry.artifacts.put_bytes(b"left by a crashed run")
    listed = json.loads(adapters("gc", "--min-age", "0", "--json").stdout)["collectable"]
    assert [(item["kind"], item["name"]) for item in listed] == [("blob", orphan)]
    assert adapters("gc", "--yes").stdout.splitlines()[-1].startswith("kept 1 unreferenced object(s)")
    assert adapters("gc", "--min-age", "0", "--yes").exit_code == 0
    assert not registry.artifacts.has_blob(orphan)

    weights = registry.artifacts.manifest(registry.resolve("tax@1").artifact_digest)[
        "adapter_model.safetensors"
    ]
    registry.artifacts.fs.pipe_file(registry.artifacts.blob_path(weights), b"tw0")
    broken = adapters("verify")
    assert broken.exit_code == 5
    assert "ip@2 adapter_model.safetensors, tax@1 adapter_model.safetensors" in broken.stdout
    assert adapters("verify", "ip@1").exit_code == 0


@pytest.mark.slow
def test_train_and_continue_with_the_store_on_s3(adapters, s3_store: str, home: Path, tmp_path: Path) -> None:
    from support.tiny_models import bpe_tokenizer, save_base

    base = save_base(tmp_path / "base", bpe_tokenizer(TEXTS, vocab_size=300))
    data = []
    for index in range(2):
        path = tmp_path / f"update-{index}.jsonl"
        path.write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS[index * 6 : index * 6 + 6]))
        data.append(path)
    common = ("--max-length", "64", "--no-eval", "-q")
    first = adapters("train", "ip", "--base", str(base), "--data", str(data[0]), *common)
    assert first.exit_code == 0, first.output
    second = adapters("train", "ip", "--data", str(data[1]), *common)  # checks the parent out of S3
    assert second.exit_code == 0, second.output
    assert second.stdout.strip().endswith("ip@2")

    registry = Settings.load().open_registry()
    assert registry.resolve("ip@2").parent == "ip@1"
    keys = bucket_keys(registry)
    assert sum(key.startswith("manifests/") for key in keys) == 2
    assert not (home / "artifacts").exists()
    report = json.loads(adapters("verify", "--json").stdout)
    assert report["ok"] is True and (report["artifacts"], report["datasets"]) == (2, 2)
    assert json.loads(adapters("gc", "--min-age", "0", "--json").stdout)["collectable"] == []

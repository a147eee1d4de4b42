"""`adapters train --num-processes 2`: data-parallel on two CPU processes (gloo) through accelerate;
the workers only train, the CLI process alone stores and registers."""

import json
from pathlib import Path
from typing import Any

import pytest
from support.tiny_models import bpe_tokenizer, save_base

from loraledger.settings import Settings

TEXTS = [f"Section {i}: the licensor grants a licence to reproduce work {i * 3}." for i in range(48)]


@pytest.mark.slow
def test_two_processes_train_one_version(adapters: Any, tmp_path: Path) -> None:
    base = save_base(tmp_path / "base", bpe_tokenizer(TEXTS, vocab_size=300))
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps({"text": text}) + "\n" for text in TEXTS))
    args = ["--base", str(base), "--data", str(data), "--rank", "4", "--max-length", "64"]
    args += ["--batch-tokens", "128", "--no-eval", "--quiet", "--json"]
    result = adapters("train", "dp", *args, "--num-processes", "2")
    assert result.exit_code == 0, result.stderr
    outcome = json.loads(result.stdout)
    assert outcome["version"]["ref"] == "dp@1"
    micro_batches = outcome["training"]["data"]["micro_batches"]
    assert outcome["training"]["steps"] == -(-micro_batches // 2)  # each step: one micro-batch per process

    run_dir = next(Settings.load().runs_dir.glob("dp-*"))
    log = (run_dir / "train.log").read_text()
    assert "[rank 0]" in log
    assert "Total train batch size (w. parallel, distributed & accumulation) = 2" in log
    assert "registered dp@1" in log
    # one version, one adapter: only the CLI process wrote to the registry and the store
    registry = Settings.load().open_registry()
    assert [version.ref for version in registry.versions("dp")] == ["dp@1"]
    adapter = registry.checkout("dp@1", tmp_path / "adapter")
    assert (adapter / "adapter_model.safetensors").is_file()

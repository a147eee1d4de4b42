"""Crash safety and determinism of `adapters train`: a run killed with SIGKILL registers nothing and
`--resume` continues it from its last checkpoint; the same seed, data and base give the same adapter."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from support.tiny_models import bpe_tokenizer, save_base

TEXTS = [f"Record {i}: the licensee shall keep entry {i * 13} for audit and inspection." for i in range(60)]
CLI = "import sys; from loraledger.cli.main import main; main(sys.argv[1:])"


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_base(tmp_path_factory.mktemp("base"), bpe_tokenizer(TEXTS, vocab_size=300))


@pytest.fixture
def run_args(base: Path, tmp_path: Path) -> list[str]:
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps({"text": text}) + "\n" for text in TEXTS))
    return [
        "train", "ip", "--base", str(base), "--data", str(data), "--rank", "4", "--max-length", "64",
        "--batch-tokens", "128", "--checkpoint-steps", "2", "--no-eval", "--quiet",
    ]  # fmt: skip


def digest_of(result: Any) -> str:
    assert result.exit_code == 0, result.stderr
    return str(json.loads(result.stdout)["version"]["artifact_digest"])


def wait_for_checkpoint(process: subprocess.Popen[bytes], home: Path, log: Path) -> Path:
    """The first complete checkpoint of the run (trainer_state.json is written last)."""
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        found = sorted(home.glob("runs/ip-*/checkpoints/checkpoint-*/trainer_state.json"))
        if found:
            return found[0].parent
        try:
            process.wait(timeout=0.05)  # doubles as the polling interval
        except subprocess.TimeoutExpired:
            continue
        pytest.fail(
            f"the run ended (exit {process.returncode}) before its first checkpoint: {log.read_text()}"
        )
    process.kill()
    pytest.fail("no checkpoint within 10 minutes")


@pytest.mark.slow
def test_killed_run_registers_nothing_and_resumes(
    adapters: Any, home: Path, tmp_path: Path, run_args: list[str]
) -> None:
    log = tmp_path / "killed.log"
    with log.open("wb") as output:
        process = subprocess.Popen([sys.executable, "-c", CLI, *run_args], stdout=output, stderr=output)
        checkpoint = wait_for_checkpoint(process, home, log)
        os.kill(process.pid, signal.SIGKILL)
        assert process.wait() == -signal.SIGKILL
    run_dir = checkpoint.parent.parent
    listed = adapters("list", "--json")
    assert json.loads(listed.stdout) == []  # nothing registered before completion

    resumed = adapters(*run_args, "--resume", "--json")
    assert resumed.exit_code == 0, resumed.stderr
    outcome = json.loads(resumed.stdout)["training"]
    assert outcome["resumed_from"].startswith("checkpoint-")
    start = int(outcome["resumed_from"].removeprefix("checkpoint-"))
    assert start >= int(checkpoint.name.removeprefix("checkpoint-")) >= 2
    assert outcome["resumed_at_step"] == start < outcome["steps"]
    text = (run_dir / "train.log").read_text()
    assert "step 1/" in text  # the killed attempt's lines are kept
    assert f"resuming from {run_dir / 'checkpoints' / outcome['resumed_from']}" in text
    assert f"step {start + 1}/{outcome['steps']}" in text.split("resuming from")[-1]
    assert "registered ip@1" in text
    assert not (run_dir / "checkpoints").exists()  # cleaned up once registered
    listed = adapters("list", "--json")
    assert [version["ref"] for version in json.loads(listed.stdout)] == ["ip@1"]

    # Same seed, data and base in a fresh home: the same adapter, byte for byte; and the resumed run,
    # which restored optimizer, scheduler, data position and RNG states, matches it too.
    # (--resume in a home without a checkpoint of the run warns and trains from the start.)
    second = adapters("--home", str(tmp_path / "second-home"), *run_args, "--resume", "--json")
    assert "no checkpoint of this run" in second.stderr
    assert json.loads(second.stdout)["training"]["resumed_from"] is None
    uninterrupted = digest_of(second)
    # Another process: another string-hash seed, which once reordered target_modules in the config.
    third = [sys.executable, "-c", CLI, "--home", str(tmp_path / "third-home"), *run_args, "--json"]
    again = subprocess.run(third, capture_output=True, text=True, check=False)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["version"]["artifact_digest"] == uninterrupted
    assert digest_of(resumed) == uninterrupted

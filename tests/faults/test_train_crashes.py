"""`adapters train` killed (-9) at each stage, or out of disk space: nothing half-registered, nothing
registered lost, every leftover listed by `adapters gc`, and the same command then succeeds."""

import json
import signal
from pathlib import Path

import pytest
from support import cli_process
from support.crash_checks import assert_nothing_half_done
from support.seeding import seed_version

from loraledger.registry import Registry
from loraledger.settings import Settings

pytestmark = pytest.mark.slow

TEXTS = [f"Clause {i}: the licensee shall keep every notice intact, word {i}." for i in range(40)]


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from support.tiny_models import bpe_tokenizer, save_base

    return save_base(tmp_path_factory.mktemp("bases") / "tiny-llama", bpe_tokenizer(TEXTS, vocab_size=300))


@pytest.fixture
def registry() -> Registry:
    """A registry already holding another adapter, which no crash may touch."""
    registry = Settings.load().open_registry()
    seed_version(registry, "other", weights=b"registered before the crash")
    return registry


def train_args(base: Path, data: Path) -> tuple[str, ...]:
    return ("train", "ip", "--base", str(base), "--data", str(data), "--max-length", "64")


@pytest.fixture
def data(tmp_path: Path) -> Path:
    path = tmp_path / "update.jsonl"
    path.write_text("".join(json.dumps({"text": text}) + "\n" for text in TEXTS[:6]))
    return path


@pytest.mark.parametrize(
    ("fault", "leftovers"),
    [
        ("train-step:kill", []),  # nothing stored yet: the run folder keeps its checkpoints for --resume
        ("before-register:stop", ["blob", "blob", "blob", "blob", "manifest"]),  # killed from outside
        ("register-commit:kill", ["blob", "blob", "blob", "blob", "manifest"]),  # COMMIT never issued
    ],
)
def test_killed_training_leaves_nothing_half_registered(
    adapters, registry: Registry, base: Path, data: Path, tmp_path: Path, fault: str, leftovers: list[str]
) -> None:
    before = adapters("list", "--json").stdout
    run = cli_process.start(
        *train_args(base, data), "-q", "--no-eval", workdir=tmp_path / "w", ADAPTERS_FAULT=fault
    )
    if fault.endswith(":stop"):
        run.wait_until_stopped()
        run.kill()  # kill -9 from another process, at exactly that point
    crashed = run.finish()
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    # Leftovers: the training data's copy and the adapter's 3 files, and its manifest.
    assert assert_nothing_half_done(adapters, registry, before) == leftovers

    if not fault.startswith("register-commit"):
        return  # one rerun shows recovery; each costs a training process
    again = cli_process.run(*train_args(base, data), "-q", "--no-eval", workdir=tmp_path / "again")
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip().endswith("ip@1")
    # Training is deterministic, so the rerun stored the very blobs the crash left: nothing is orphaned.
    garbage = json.loads(adapters("gc", "--min-age", "0", "--json").stdout)["collectable"]
    assert garbage == []
    assert adapters("verify").exit_code == 0


def test_full_disk_while_storing_the_adapter(
    adapters, registry: Registry, base: Path, data: Path, tmp_path: Path
) -> None:
    before = adapters("list", "--json").stdout
    # Blob writes: the data copy, then the adapter's files in name order; the 3rd is the weights.
    full = cli_process.run(
        *train_args(base, data),
        "-q",
        "--no-eval",
        workdir=tmp_path / "w",
        ADAPTERS_FAULT="blob-write@3:enospc",
    )
    assert full.returncode == 1
    assert "Traceback" not in full.stdout + full.stderr
    assert full.stderr.splitlines() == [
        f"error: cannot write to the artifact store {registry.artifacts.url}: No space left on device "
        "(free some space, then run the command again)"
    ]
    # The data copy and the config were stored before the disk filled; no temporary file is left.
    assert assert_nothing_half_done(adapters, registry, before) == ["blob", "blob"]
    registry.checkout("other@1", tmp_path / "still-there")

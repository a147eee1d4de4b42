"""`pip install loraledger` (no [train] extra) gives a working registry CLI, and training says what to add."""

import subprocess
import sys
from pathlib import Path

# Hide the training stack from this interpreter, as if only the base package were installed.
BLOCK = """
import importlib.abc, sys
class Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "transformers", "peft", "bitsandbytes", "accelerate"):
            raise ModuleNotFoundError(name)
        return None
sys.meta_path.insert(0, Hide())
import importlib.util
_real = importlib.util.find_spec
def find_spec(name, package=None):
    if name.split(".")[0] in ("torch", "transformers", "peft", "bitsandbytes", "accelerate"):
        return None
    return _real(name, package)
importlib.util.find_spec = find_spec
from loraledger.cli.main import main
main(sys.argv[1:])
"""


def run(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", BLOCK, "--home", str(home), *args], capture_output=True, text=True, check=False
    )


def test_registry_commands_work_without_torch(home: Path) -> None:
    assert run(home, "--help").returncode == 0
    listed = run(home, "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.strip() == "[]"


def test_train_names_the_missing_extra(home: Path, tmp_path: Path) -> None:
    data = tmp_path / "d.jsonl"
    data.write_text('{"text": "hello"}\n')
    finished = run(home, "train", "x", "--base", "builtin:tiny", "--data", str(data))
    assert finished.returncode != 0
    assert "pip install 'loraledger[train]'" in finished.stderr
    assert "Traceback" not in finished.stderr
    assert len(finished.stderr.strip().splitlines()) == 1

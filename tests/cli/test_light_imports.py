"""`adapters --help` and `adapters list` must not pay for torch or transformers."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

PROBE = """
import json, sys
from loraledger.cli.main import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
HEAVY = ("torch", "transformers", "peft", "bitsandbytes", "accelerate")
heavy = sorted(m for m in sys.modules if m.split(".")[0] in HEAVY)
print("MODULES=" + json.dumps(heavy), file=sys.stderr)
"""


def heavy_modules(args: list[str], home: Path) -> list[str]:
    finished = subprocess.run(
        [sys.executable, "-c", PROBE, "--home", str(home), *args], capture_output=True, text=True, check=True
    )
    line = next(line for line in finished.stderr.splitlines() if line.startswith("MODULES="))
    return list(json.loads(line.removeprefix("MODULES=")))


@pytest.mark.parametrize(
    "args", [["--help"], ["list"], ["list", "--json"], ["train", "--help"], ["history", "x"]]
)
def test_fast_paths_import_no_torch(args: list[str], home: Path) -> None:
    assert heavy_modules(args, home) == []


def test_registry_package_never_imports_torch() -> None:
    probe = "import sys, loraledger.registry, loraledger.schemas; print('torch' in sys.modules)"
    finished = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert finished.stdout.strip() == "False"

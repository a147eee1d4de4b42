"""The layering rules hold: import-linter's contracts (pyproject.toml) pass, every module of the
top-level package is named in them, and ``import loraledger`` loads no model library and no UI."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the same parser, from PyPI
    import tomli as tomllib

REPO = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def contracts() -> dict[str, dict[str, object]]:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    return {contract["id"]: contract for contract in config["tool"]["importlinter"]["contracts"]}


def test_import_contracts_are_kept() -> None:
    command = str(LINT_IMPORTS) if LINT_IMPORTS.exists() else shutil.which("lint-imports")
    assert command, "lint-imports is not installed: pip install -e '.[dev]'"
    finished = subprocess.run(
        [command, "--no-logo", "--no-cache"], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert finished.returncode == 0, finished.stdout + finished.stderr
    kept = re.findall(r"KEPT", finished.stdout)
    assert len(kept) == len(contracts()) == 6


def test_every_workflow_module_is_under_the_contracts() -> None:
    """A new module in workflows/ must be added to the contracts, or the core could import it."""
    modules = {f"loraledger.{path.stem}" for path in (REPO / "workflows").glob("*.py")} - {
        "loraledger.__init__"
    }
    named = contracts()
    assert modules <= set(named["core-no-workflows"]["forbidden_modules"])  # type: ignore[arg-type]
    assert modules <= set(named["workflows-no-cli"]["source_modules"])  # type: ignore[arg-type]


def test_import_loraledger_loads_no_model_library_and_no_ui() -> None:
    # -X importtime lists every module imported, one line each on stderr: "import time: self | total | name".
    finished = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import loraledger; loraledger.open"],
        capture_output=True,
        text=True,
        check=True,
    )
    lines = [line for line in finished.stderr.splitlines() if line.startswith("import time:")]
    imported = {line.rsplit("|", 1)[1].strip() for line in lines}
    assert "loraledger" in imported
    heavy = {"torch", "transformers", "peft", "click", "rich"}
    assert sorted(m for m in imported if m.split(".")[0] in heavy) == []


def test_benchmarks_use_the_library_not_the_cli() -> None:
    """Only the benchmarks that time the command itself (its start-up and its views) touch the CLI."""
    times_the_command = {"registry_scale.py", "seed_vs_adapters.py", "run.py"}
    reaching = sorted(
        path.name
        for path in (REPO / "benchmarks").glob("*.py")
        if "loraledger.cli" in path.read_text() and path.name not in times_the_command
    )
    assert reaching == []

"""The distribution as pip installs it: one `loraledger` namespace, typed, with its data files.

Builds the real wheel (setuptools from the environment, no network) and reads its file list and
metadata: nothing generic (`cli`, `registry`, ...) lands at the top of site-packages, every package
carries `py.typed`, the samples, migrations and JSON Schema ship, and torch is only in the extras.
"""

import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("wheel")
    # A copy of the sources: building in place would leave build/ and egg-info/ beside the checkout.
    source = out / "src"
    files = subprocess.run(  # what git tracks or would track: the sources, without build outputs
        ["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        check=True,
        capture_output=True,
    ).stdout.split(b"\0")
    for name in filter(None, files):
        target = source / name.decode()
        if (REPO / name.decode()).is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes((REPO / name.decode()).read_bytes())
    build = ["wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), "."]
    subprocess.run(
        [sys.executable, "-m", "pip", *build],
        cwd=source,
        check=True,
        capture_output=True,
    )
    (built,) = out.glob("loraledger-*.whl")
    return zipfile.ZipFile(built)


def test_everything_lives_under_one_namespace(wheel: zipfile.ZipFile) -> None:
    tops = {name.split("/")[0] for name in wheel.namelist()}
    (dist_info,) = [top for top in tops if top.endswith(".dist-info")]
    assert tops == {"loraledger", dist_info}
    names = wheel.namelist()
    packages = {
        name.split("/")[1] for name in names if name.startswith("loraledger/") and name.count("/") > 1
    }
    assert {"cli", "registry", "schemas", "trainer"} <= packages
    # The top-level package is the library itself (workflows/): its public API and the workflows.
    assert "loraledger/__init__.py" in names and "loraledger/ledger.py" in names


def test_typed_and_complete(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    assert "loraledger/py.typed" in names
    for package in ("cli", "registry", "schemas", "trainer"):
        assert f"loraledger/{package}/py.typed" in names
    for shipped in (
        "loraledger/registry/migrations/env.py",
        "loraledger/registry/migrations/versions/0001_initial.py",
        "loraledger/schemas/json/recipe.schema.json",
        "loraledger/trainer/samples/NOTICE.md",
        "loraledger/trainer/samples/legal/update-1.jsonl",
        "loraledger/trainer/samples/legal/update-1-eval.jsonl",
        "loraledger/trainer/samples/legal/update-2.jsonl",
        "loraledger/trainer/samples/general/retention-eval.jsonl",
        "loraledger/dashboard/templates/adapter.html",
        "loraledger/dashboard/static/style.css",
    ):
        assert shipped in names, shipped
    assert not any("__pycache__" in name or name.startswith("loraledger/tests") for name in names)


def test_torch_only_in_the_training_extra(wheel: zipfile.ZipFile) -> None:
    (metadata_name,) = [name for name in wheel.namelist() if name.endswith(".dist-info/METADATA")]
    metadata = Parser().parsestr(wheel.read(metadata_name).decode())
    requires = metadata.get_all("Requires-Dist") or []
    core = [line for line in requires if "extra ==" not in line]
    assert not any(line.split()[0].startswith(("torch", "transformers", "peft")) for line in core), core
    assert any(line.startswith("torch>=2.6") and 'extra == "train"' in line for line in requires)
    (entry_points,) = [name for name in wheel.namelist() if name.endswith(".dist-info/entry_points.txt")]
    assert "adapters = loraledger.cli.main:main" in wheel.read(entry_points).decode()

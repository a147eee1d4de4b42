"""What must hold after a crash or a refused write: the registry as before, sound, writable, and every
file in the artifact store either referenced or reported by `adapters verify` and listed by `adapters gc`."""

import json
from pathlib import Path
from typing import Any

from loraledger.registry import Registry


def stored_files(registry: Registry) -> dict[str, str]:
    """Every file under a local store -> the name gc gives it (found by walking the folder, not by
    the store's own listing, so that a file the store does not know about is caught too)."""
    root = Path(registry.artifacts.root)
    names = {}
    for path in root.rglob("*"):
        if path.is_file():
            folder = path.relative_to(root).parts[0]
            names[str(path)] = path.name if folder == "tmp" else f"sha256:{path.name}"
    return names


def referenced(registry: Registry) -> set[str]:
    names = set()
    for version in registry.versions():
        names.add(version.artifact_digest)
        names.update(registry.artifacts.manifest(version.artifact_digest).values())
    names.update(d.blob for d in registry.datasets() if d.blob)
    return names


def assert_nothing_half_done(adapters: Any, registry: Registry, before: str) -> list[str]:
    """The registry is as before, sound and writable; returns the kinds of the leftovers gc lists."""
    assert adapters("list", "--json").stdout == before
    verified = adapters("verify", "--json")
    assert verified.exit_code == 0, verified.output
    listed = json.loads(adapters("gc", "--min-age", "0", "--json").stdout)["collectable"]
    live = referenced(registry)
    orphans = {name for name in stored_files(registry).values() if name not in live}
    assert orphans == {item["name"] for item in listed}
    assert orphans == {item["name"] for item in json.loads(verified.stdout)["unreferenced"]}
    some_ref = json.loads(before)[0]["ref"] if json.loads(before) else None
    if some_ref:
        assert adapters("alias", some_ref, "after-crash").exit_code == 0  # no lock left behind
        assert adapters("alias", some_ref, "after-crash", "--delete").exit_code == 0
    return sorted(item["kind"] for item in listed)

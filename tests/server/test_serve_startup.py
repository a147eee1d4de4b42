"""What `adapters serve` refuses before loading anything, and the Ledger calls the server is built on."""

from pathlib import Path

from support.seeding import BASE, seed_version

import loraledger
from loraledger.schemas.records import BaseModelRecord
from loraledger.server.options import ServeOptions
from loraledger.settings import Settings

OTHER_BASE = BaseModelRecord(model_id="acme/other", config_digest="sha256:" + "1" * 64, weights_digest=None)


def error_line(result) -> str:  # type: ignore[no-untyped-def]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return str(lines[0])


def test_nothing_to_serve(adapters) -> None:  # type: ignore[no-untyped-def]
    result = adapters("serve")
    assert result.exit_code == 2
    assert "nothing to serve" in error_line(result) and "--base MODEL" in result.stderr


def test_base_and_names_together_are_refused(adapters) -> None:  # type: ignore[no-untyped-def]
    result = adapters("serve", "--base", "builtin:tiny", "legal")
    assert result.exit_code == 2 and "either --base MODEL or adapter NAMEs" in error_line(result)


def test_bounds_are_checked(adapters) -> None:  # type: ignore[no-untyped-def]
    result = adapters("serve", "--max-loaded", "0", "--base", "builtin:tiny")
    assert result.exit_code == 2 and "--max-loaded must be at least 1" in error_line(result)


def test_adapters_on_several_bases_need_a_choice(adapters) -> None:  # type: ignore[no-untyped-def]
    registry = Settings.load().open_registry()
    seed_version(registry, "legal", weights=b"legal")
    seed_version(registry, "vision", weights=b"vision", base=OTHER_BASE)
    result = adapters("serve")
    line = error_line(result)
    assert result.exit_code == 2
    assert "builtin:tiny: legal" in line and "acme/other: vision" in line
    unknown = adapters("serve", "nosuch")
    assert unknown.exit_code == 3 and "nosuch" in error_line(unknown)


def test_loopback_is_the_default() -> None:
    assert ServeOptions().host == "127.0.0.1" and ServeOptions().loopback
    assert ServeOptions(host="::1").loopback and ServeOptions(host="localhost").loopback
    assert not ServeOptions(host="0.0.0.0").loopback


def test_adapter_folder_is_checked_out_once_per_digest(tmp_path: Path) -> None:
    ledger = loraledger.open()
    first = seed_version(ledger.registry, "legal", weights=b"same weights", rows=["a"])
    again = seed_version(ledger.registry, "legal", weights=b"same weights", rows=["b"], parent=first.ref)
    other = seed_version(ledger.registry, "legal", weights=b"other weights", rows=["c"], parent=again.ref)
    assert first.artifact_digest == again.artifact_digest != other.artifact_digest

    cache = tmp_path / "adapters"
    folder = ledger.adapter_folder(first, cache)
    assert folder == cache / first.artifact_digest.removeprefix("sha256:")
    assert (folder / "adapter_model.safetensors").read_bytes() == b"same weights"
    assert ledger.adapter_folder(again, cache) == folder  # two versions, one copy
    assert ledger.adapter_folder(other, cache) != folder
    assert sorted(p.name for p in cache.iterdir()) == sorted(
        d.removeprefix("sha256:") for d in {first.artifact_digest, other.artifact_digest}
    )  # no staging folder left behind
    assert BASE.model_id == first.base.model_id

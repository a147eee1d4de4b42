"""Finding 4 (and the export part of 7) of issue 17: every file written outside the store is created
without following a link, nothing is replaced without --force, and an empty destination is refused."""

import json
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def exportable(registry, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """ex@1: a LoRA adapter folder (export copies files; the weights are never loaded)."""
    from loraledger.schemas.records import NewVersion

    folder = tmp_path / "adapter"
    folder.mkdir()
    (folder / "adapter_model.safetensors").write_bytes(b"weights")
    config = {"peft_type": "LORA", "r": 8, "lora_alpha": 16, "target_modules": ["q_proj"]}
    (folder / "adapter_config.json").write_text(json.dumps(config))
    base = registry.resolve("ip@1").base
    registry.register(
        NewVersion(name="ex", kind="import", base=base, artifact_digest=registry.put_artifact(folder))
    )


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    folder = tmp_path / "dest"
    folder.mkdir()
    return folder


def test_a_sidecar_that_is_a_link_is_never_written_through(refused, dest: Path, tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    (dest / "ex-v1.vllm.json").symlink_to(victim)
    for force in ((), ("--force",)):
        line = refused("export", "ex@1", str(dest), "--format", "vllm", *force, code=4)
        assert line == f"error: {dest}/ex-v1.vllm.json is a link: refusing to write through it (remove it)"
    assert victim.read_text() == "precious\n"
    assert not (dest / "ex-v1").exists()


def test_a_dangling_link_is_not_followed_to_create_its_target(refused, dest: Path, tmp_path: Path) -> None:
    target = tmp_path / "created-by-the-link.json"
    (dest / "ex-v1.lorax.json").symlink_to(target)
    assert "is a link: refusing to write through it" in refused(
        "export", "ex@1", str(dest), "--format", "lorax", code=4
    )
    assert not target.exists() and not (dest / "ex-v1").exists()


def test_an_adapter_folder_that_is_a_link_is_not_replaced_through_it(
    refused, dest: Path, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("keep")
    (dest / "ex-v1").symlink_to(elsewhere, target_is_directory=True)
    for force in ((), ("--force",)):
        assert "ex-v1 is a link: refusing to write through it" in refused(
            "export", "ex@1", str(dest), *force, code=4
        )
    assert [p.name for p in elsewhere.iterdir()] == ["keep.txt"]


def test_an_existing_sidecar_is_replaced_only_with_force(adapters, refused, dest: Path) -> None:
    sidecar = dest / "ex-v1.vllm.json"
    sidecar.write_text("mine\n")
    line = refused("export", "ex@1", str(dest), "--format", "vllm", code=4)
    assert line == f"error: {sidecar} already exists: pass --force to replace it"
    assert sidecar.read_text() == "mine\n" and not (dest / "ex-v1").exists()
    result = adapters("export", "ex@1", str(dest), "--format", "vllm", "--force")
    assert result.exit_code == 0, result.output
    assert json.loads(sidecar.read_text())["name"] == "ex-v1"


def test_an_empty_destination_is_refused(refused, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert refused("export", "ex@1", "", code=2) == "error: give a destination folder for the export (got '')"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adapter", "home"]

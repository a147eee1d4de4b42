"""The first continual loop through the CLI: train v1, continue to v2, list them."""

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
TINY = ["--epochs", "1", "--max-length", "128", "--batch-tokens", "1024", "--no-eval", "-q"]


def sample(samples: Path, tmp_path: Path, stem: str, rows: int) -> Path:
    lines = (samples / "legal" / f"{stem}.jsonl").read_text().splitlines()[:rows]
    path = tmp_path / f"{stem}.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_train_continue_and_list(adapters, samples: Path, tmp_path: Path, tiny_base: Path) -> None:  # type: ignore[no-untyped-def]
    first = adapters(
        "train",
        "ip",
        "--base",
        "builtin:tiny",
        "--data",
        str(sample(samples, tmp_path, "update-1", 6)),
        *TINY,
    )
    assert first.exit_code == 0, first.output
    assert first.stdout.strip().splitlines()[-1] == "ip@1"

    second = adapters("train", "ip", "--data", str(sample(samples, tmp_path, "update-2", 6)), *TINY)
    assert second.exit_code == 0, second.output
    assert second.stdout.strip().splitlines()[-1] == "ip@2"
    # --no-eval: the gate could not look, and the summary says so rather than passing in silence
    (gate,) = [line for line in second.stdout.splitlines() if line.startswith("gate")]
    assert "not checked (--no-eval)" in gate and "adapters eval ip@2" in gate

    listed = adapters("list", "--json")
    versions = json.loads(listed.stdout)
    assert [(v["ref"], v["parent"], v["current"]) for v in versions] == [
        ("ip@1", None, False),
        ("ip@2", "ip@1", True),
    ]
    v1, v2 = versions
    assert v1["base"]["model_id"] == v2["base"]["model_id"] == "builtin:tiny"
    assert v1["base"]["weights_digest"] == v2["base"]["weights_digest"]
    assert v1["train_digest"] != v2["train_digest"]
    assert (
        v1["lora"]
        == v2["lora"]
        == {
            "r": 16,
            "alpha": 32.0,
            "dropout": 0.05,
            "target_modules": ["q_proj", "v_proj"],
        }
    )
    assert v2["train_tokens"] > 0 and v2["final_loss"] > 0
    assert v1["artifact_digest"] != v2["artifact_digest"]

    table = adapters("list")
    assert table.exit_code == 0
    for text in ("ip", "builtin:tiny", "current"):
        assert text in table.stdout


def test_continuing_keeps_the_parent_adapter_trainable(
    adapters, samples: Path, tmp_path: Path, tiny_base: Path
) -> None:  # type: ignore[no-untyped-def]
    """v2 starts from v1's weights: with a zero learning rate it must equal v1 exactly."""
    data = str(sample(samples, tmp_path, "update-1", 4))
    assert adapters("train", "ip", "--base", "builtin:tiny", "--data", data, *TINY).exit_code == 0
    frozen = adapters("train", "ip", "--data", data, "--lr", "1e-12", "--warmup", "0", *TINY)
    assert frozen.exit_code == 0, frozen.output

    from safetensors.torch import load_file

    from loraledger.settings import Settings

    registry = Settings.load().open_registry()
    v1 = load_file(registry.checkout("ip@1", tmp_path / "v1") / "adapter_model.safetensors")
    v2 = load_file(registry.checkout("ip@2", tmp_path / "v2") / "adapter_model.safetensors")
    assert v1.keys() == v2.keys()
    assert any(float(t.abs().max()) > 0 for k, t in v1.items() if "lora_B" in k)  # v1 really trained
    for key in v1:
        assert (v1[key] - v2[key]).abs().max() < 1e-6, key

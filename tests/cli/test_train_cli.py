"""`adapters train` end to end: data files and folders, recipes and flags, continuing a parent, shape
changes, --fresh, replay, the recorded recipe, padding, and the run log.

The base is a tiny random Llama saved as a local folder (tests/support/tiny_models.py): training it
takes seconds, and what is checked here is the bookkeeping, not what the model learns.
"""

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support.tiny_models import bpe_tokenizer, save_base

from loraledger.settings import Settings
from loraledger.trainer.recipe import RECIPE_FILE

TEXTS = [f"Clause {i}: the licensee shall keep record {i * 7} for audit purposes." for i in range(60)]
FAST = ("--max-length", "64", "--batch-tokens", "256", "--no-eval", "--quiet", "--json")


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_base(tmp_path_factory.mktemp("base"), bpe_tokenizer(TEXTS, vocab_size=300))


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def train(adapters: Any, *args: str) -> dict[str, Any]:
    result = adapters("train", *args)
    assert result.exit_code == 0, result.stderr
    return dict(json.loads(result.stdout))


def checkout(ref: str, dest: Path) -> Path:
    return Settings.load().open_registry().checkout(ref, dest)


@pytest.mark.slow
def test_continual_updates_replay_and_shape_rules(adapters: Any, base: Path, tmp_path: Path) -> None:
    # v1: a folder of mixed formats (text file, CSV, Parquet), a recipe file, and a flag over it
    first = tmp_path / "first"
    first.mkdir()
    (first / "notes.txt").write_text(" ".join(TEXTS[:10]))
    (first / "table.csv").write_text("text\n" + "".join(f'"{text}"\n' for text in TEXTS[10:30]))
    pq.write_table(pa.Table.from_pylist([{"text": text} for text in TEXTS[30:40]]), first / "more.parquet")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("lora:\n  alpha: 8\ntraining:\n  epochs: 2\n  seed: 7\n  learning_rate: 0.001\n")
    v1 = train(
        adapters, "ip", "--base", str(base), "--data", str(first), "--config", str(recipe), "--epochs", "1",
        "--rank", "4", *FAST,
    )  # fmt: skip
    assert v1["version"]["ref"] == "ip@1"
    stats = v1["training"]["data"]
    assert stats["rows"] == 31  # one text file + 20 CSV rows + 10 Parquet rows
    assert stats["windows_split"] >= 1  # the text file is longer than 64 tokens: split, not cut
    assert stats["tokens"] == stats["trained_tokens"] + stats["sequences"]  # first token of each window
    assert stats["padding_share"] < 0.10
    recorded = v1["version"]
    assert recorded["lora"] == {"r": 4, "alpha": 8.0, "dropout": 0.05, "target_modules": ["q_proj", "v_proj"]}
    assert recorded["training"]["epochs"] == 1.0  # the flag wins over the file
    assert recorded["training"]["learning_rate"] == 0.001 and recorded["seed"] == 7
    assert {"torch", "transformers", "peft", "python"} <= set(recorded["libraries"])
    saved = json.loads((checkout("ip@1", tmp_path / "v1") / RECIPE_FILE).read_text())
    assert saved["lora"] == recorded["lora"]
    assert {k: v for k, v in saved["training"].items()} == {
        k: v for k, v in recorded["training"].items() if k in saved["training"]
    }
    assert saved["libraries"] == recorded["libraries"]

    # a change of LoRA shape against the parent is refused before any training, unless --fresh
    data2 = write_jsonl(
        tmp_path / "second.jsonl",
        [{"prompt": f"Q{i}: which record?", "completion": f" record {i}"} for i in range(24)],
    )
    shape_changes = (
        (("--rank", "8"), "r=4"),
        (("--alpha", "16"), "alpha=8.0"),
        (("--target-modules", "k_proj"), "target_modules"),
    )
    for flags, message in shape_changes:
        refused = adapters("train", "ip", "--data", str(data2), "--no-eval", *flags)
        assert refused.exit_code != 0
        assert message in refused.stderr and "--fresh" in refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1
    # the parent's own shape, spelled in another order, is not a change
    same = ("--target-modules", "v_proj,q_proj")

    # v2 continues v1 (trainable, same parameter count) with 20% replay of v1's rows; dropout only
    # regularises training, so a continuation may change it
    v2 = train(adapters, "ip", "--data", str(data2), "--replay", "0.2", "--dropout", "0.1", *same, *FAST)
    assert v2["version"]["parent"] == "ip@1" and v2["gated"] is False  # --no-eval
    assert v2["version"]["lora"] == recorded["lora"] | {"dropout": 0.1}
    saved = json.loads((checkout("ip@2", tmp_path / "v2") / "adapter_config.json").read_text())
    assert saved["lora_dropout"] == 0.1 and saved["lora_alpha"] == 8
    assert v2["training"]["trainable_parameters"] == v1["training"]["trainable_parameters"]
    replayed = round(0.2 / 0.8 * 24)  # replay makes up 20% of the mix: 6 of 30 rows
    assert v2["version"]["training"]["replay_rows"] == replayed
    assert v2["training"]["data"]["rows"] == 24 + replayed
    replay_uses = [use for use in v2["version"]["datasets"] if use["role"] == "replay"]
    train_uses = {use["dataset"]["digest"] for use in v1["version"]["datasets"] if use["role"] == "train"}
    assert sum(use["rows"] for use in replay_uses) == replayed
    assert {use["dataset"]["digest"] for use in replay_uses} <= train_uses  # drawn from v1's data
    assert [use["rows"] for use in v2["version"]["datasets"] if use["role"] == "train"] == [24]

    # --fresh starts a new LoRA of another shape on the same name
    v3 = train(adapters, "ip", "--data", str(data2), "--fresh", "--rank", "8", *FAST)
    assert v3["version"]["parent"] is None and v3["version"]["lora"]["r"] == 8

    logs = sorted(Settings.load().runs_dir.glob("ip-*/train.log"))
    assert len(logs) == 3  # one per run
    text = "\n".join(path.read_text() for path in logs)
    for line in ("loading base", "Running training", "step 1/", "registered ip@1", "replayed"):
        assert line in text, line


@pytest.mark.slow
def test_chat_rows_and_a_tokenizer_without_pad_or_eos(adapters: Any, tmp_path: Path) -> None:
    bare = save_base(tmp_path / "bare", bpe_tokenizer(TEXTS, vocab_size=300, eos=False))
    chats = write_jsonl(
        tmp_path / "chats.jsonl",
        [
            {
                "messages": [
                    {"role": "user", "content": f"Which record is {i}?"},
                    {"role": "assistant", "content": TEXTS[i]},
                ]
            }
            for i in range(16)
        ],
    )
    result = train(adapters, "chat", "--base", str(bare), "--data", str(chats), "--rank", "4", *FAST)
    stats = result["training"]["data"]
    # replies only: every conversation has a masked BOS, user turn and role headers (>= 5 tokens)
    assert 0 < stats["trained_tokens"] <= stats["tokens"] - 16 * 5
    padding = result["version"]["training"]["padding"]
    assert "no pad or eos token; vocabulary unchanged" in padding
    adapter = checkout("chat@1", tmp_path / "adapter")
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert not config.get("modules_to_save")  # no resized embeddings travel with the adapter
    assert config["target_modules"] == ["q_proj", "v_proj"]  # sorted: peft saves a set
    from safetensors import safe_open

    with safe_open(str(adapter / "adapter_model.safetensors"), framework="pt") as weights:
        assert all("lora_" in key for key in weights.keys())  # noqa: SIM118


def test_recipe_errors_are_one_line(adapters: Any, tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "d.jsonl", [{"text": "x"}])
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("training:\n  epoch: 2\n")
    cases = [
        (("--config", str(recipe)), f"invalid recipe setting training.epoch (in {recipe}): Extra inputs"),
        (("--epochs", "0"), "invalid recipe setting training.epochs (--epochs): Input should be greater"),
        (("--max-length", "512", "--batch-tokens", "256"), "batch_tokens (256) is smaller than max_length"),
        (("--chat-template", "missing.jinja"), "--chat-template: missing.jinja is neither"),
    ]
    for flags, message in cases:
        result = adapters("train", "x", "--base", "builtin:tiny", "--data", str(data), *flags)
        assert result.exit_code != 0
        assert message in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_gpt2_builtin_adapts_its_fused_attention(adapters: Any, tiny_gpt2_base: Path, tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "d.jsonl", [{"text": text} for text in TEXTS[:16]])
    result = train(adapters, "g", "--base", "builtin:tiny-gpt2", "--data", str(data), "--rank", "4", *FAST)
    assert result["version"]["lora"]["target_modules"] == ["c_attn"]
    assert result["version"]["base"]["model_id"] == "builtin:tiny-gpt2"
    assert result["training"]["trainable_parameters"] > 0

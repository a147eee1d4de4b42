"""The model card of a pushed version, built from registry records (no model, no Hub)."""

from pathlib import Path

from huggingface_hub import ModelCard
from support.registry_factory import OTHER_BASE, add_version

from loraledger.modelcard import build_card, is_hub_id, plain
from loraledger.registry import Registry


def registry(tmp_path: Path) -> Registry:
    return Registry.open(f"sqlite:///{tmp_path / 'r.db'}", str(tmp_path / "store"), user="alice", host="box")


def test_card_carries_base_lineage_data_and_scores(tmp_path: Path) -> None:
    reg = registry(tmp_path)
    add_version(
        reg, "ip", base=OTHER_BASE, data=["rulings-10"], eval_data=["held-10"], scores={"held-10": 2.5}
    )
    add_version(reg, "ip", base=OTHER_BASE, parent="ip@1", data=["rulings-11"], scores={"held-10": 2.25})
    add_version(reg, "style", base=OTHER_BASE, data=["memos"])
    add_version(reg, "both", base=OTHER_BASE, kind="stack", inputs=[("ip@2", 1.0), ("style@1", 0.5)], data=[])
    version = reg.resolve("ip@2")

    card = ModelCard(build_card(reg, version, repo_id="acme/ip", relation="adapter"))
    assert card.data.base_model == "meta-llama/Llama-3.1-8B"
    assert card.data.base_model_relation == "adapter" and card.data.library_name == "peft"
    [result] = card.data.eval_results
    assert (result.metric_type, result.metric_value, result.dataset_name) == ("nll", 2.25, "held-10 eval")
    meta = card.data.loraledger
    assert [item["ref"] for item in meta["lineage"]] == ["ip@1", "ip@2"]
    assert {(use["version"], use["role"], use["file"]) for use in meta["datasets"]} == {
        ("ip@1", "train", "rulings-10.jsonl"),
        ("ip@1", "eval", "held-10.jsonl"),
        ("ip@2", "train", "rulings-11.jsonl"),
    }
    assert meta["base"]["revision"] == OTHER_BASE.revision
    assert "/data/" not in str(card) and "alice" not in str(card) and "box" not in str(card)
    assert 'PeftModel.from_pretrained(base, "acme/ip", revision="v2")' in card.text

    stacked = ModelCard(build_card(reg, reg.resolve("both@1"), repo_id="acme/both", relation="merge"))
    assert stacked.data.base_model_relation == "merge" and stacked.data.library_name == "transformers"
    lineage = [item["ref"] for item in stacked.data.loraledger["lineage"]]
    assert lineage == ["ip@1", "ip@2", "style@1", "both@1"]
    assert "ip@2 × 1, style@1 × 0.5" in stacked.text


def test_a_base_that_is_not_on_the_hub_is_not_named_as_one(tmp_path: Path) -> None:
    reg = registry(tmp_path)
    version = add_version(reg, "ip")  # builtin:tiny
    card = ModelCard(build_card(reg, version, repo_id="acme/ip", relation="adapter"))
    assert card.data.base_model is None and getattr(card.data, "base_model_relation", None) is None
    assert card.data.loraledger["base"]["model_id"] == "builtin:tiny"
    assert [is_hub_id(x) for x in ("org/model", "gpt2", "builtin:tiny", "/models/llama")] == [
        True,
        True,
        False,
        False,
    ]
    assert plain("ip update eval (/home/me/data/rulings.jsonl)") == "ip update eval (rulings.jsonl)"
    assert plain("s3://bucket/prefix/x.jsonl and org/model") == "x.jsonl and org/model"

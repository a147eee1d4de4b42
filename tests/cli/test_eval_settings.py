"""Scores are reused and compared only within one scoring setting: the scorer's cache, the gate, the
matrix (`adapters evals`), the model card and `suite add`'s hint. No model is loaded here: scoring is
replaced by fixed numbers, and registries are built with `support.registry_factory`."""

import json
from pathlib import Path
from typing import Any

import pytest
from huggingface_hub import ModelCard
from support.registry_factory import BASE, add_version, dataset

from loraledger.modelcard import build_card
from loraledger.registry import Registry
from loraledger.registry.digests import canonical_records
from loraledger.schemas.jobs import BaseSource, EvalScore
from loraledger.schemas.records import NewDataset, NewEval
from loraledger.schemas.specs import EvalSpec
from loraledger.settings import Settings
from loraledger.suites import Scorer, ScoringSet, gate, trained_options
from loraledger.trainer import evaluate

NF4, FP32 = "nf4/fp32 w512/s256", "fp32 w512/s256"


def nll(data: NewDataset, value: float, setting: str) -> NewEval:
    return NewEval(dataset=data, metric="nll", value=value, setting=setting, label="held")


def held_out(registry: Registry) -> NewDataset:
    """The dataset `dataset("held")` describes, with a copy of its rows in the store (scoring reads
    them)."""
    return registry.store_dataset(
        canonical_records([{"text": f"held {i}"} for i in range(3)]), format="jsonl", source="held.jsonl"
    )


@pytest.fixture
def registry() -> Registry:
    return Settings.load().open_registry()


@pytest.fixture
def scored(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Every scoring call, with a fixed score per quantization instead of a model."""
    calls: list[dict[str, Any]] = []

    def score_sets(base: BaseSource, adapter: Path | None, sets: Any, spec: EvalSpec, **kwargs: Any) -> Any:
        calls.append({"adapter": adapter is not None, "sets": len(sets), **kwargs})
        value = {"4bit": 2.5, "none": 2.25}[kwargs["quantize"]] + (0 if adapter else 1)
        return {digest: EvalScore(nll=value, perplexity=2.718281828**value, tokens=9) for digest in sets}

    monkeypatch.setattr(evaluate, "score_sets", score_sets)
    return calls


def test_the_scorer_reuses_scores_of_its_own_setting_only(registry: Registry, scored, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    version = add_version(registry, "ip", scores={"held": 2.5}, setting=NF4)  # as trained, in 4 bit
    data = held_out(registry)
    registry.add_to_suite("ip", data, label="held", role="retention")  # links the stored copy
    sets = {data.digest: ScoringSet("held", data)}

    def scorer(quantize: str) -> Scorer:
        source = BaseSource(model_id="builtin:tiny", path=tmp_path)
        return Scorer(registry, BASE, lambda: source, quantize=quantize, device="cpu")

    in_4bit, in_fp32 = scorer("4bit"), scorer("none")
    assert (in_4bit.setting, in_fp32.setting) == (NF4, FP32)
    assert in_4bit.ensure_version(version, sets) == [] and scored == []  # recorded in its setting

    [made, _] = in_fp32.ensure_version(version, sets)  # an NF4 score is no FP32 score: scored
    assert (made.setting, made.value) == (FP32, 2.25)
    assert scored == [{"adapter": True, "sets": 1, "quantize": "none", "text_field": "text", "device": "cpu"}]
    assert in_fp32.ensure_version(version, sets) == []  # now recorded in FP32 too
    recorded = registry.resolve("ip@1").evals
    assert sorted((e.setting, e.value) for e in recorded if e.metric == "nll") == [(FP32, 2.25), (NF4, 2.5)]

    # the base cache: one score per (dataset, setting)
    assert [e.setting for e in in_4bit.ensure_base(sets) if e.metric == "nll"] == [NF4]
    assert in_4bit.ensure_base(sets) == []
    assert [(e.setting, e.value) for e in in_fp32.ensure_base(sets) if e.metric == "nll"] == [(FP32, 3.25)]
    assert in_fp32.ensure_base(sets) == [] and len(scored) == 3
    cached = sorted((e.setting, e.value) for e in registry.base_evals(BASE) if e.metric == "nll")
    assert cached == [(FP32, 3.25), (NF4, 3.5)]


def test_the_gate_compares_parent_and_new_version_in_one_setting(registry: Registry) -> None:
    data = dataset("held")
    add_version(registry, "ip", scores={"held": 2.0}, setting=NF4)
    registry.record_evals("ip@1", [nll(data, 9.0, FP32)])  # newer, in another setting
    parent, gated = registry.resolve("ip@1"), {data.digest: "held"}

    [regression] = gate(registry, parent, [nll(data, 2.2, NF4)], gated, 0.05)
    assert (regression.before, regression.after) == (2.0, 2.2)  # against the NF4 score, not the newer one
    assert gate(registry, parent, [nll(data, 2.2, FP32)], gated, 0.05) == []  # 9.0 -> 2.2: better
    assert (
        gate(registry, parent, [nll(data, 2.2, "int8/fp32 w512/s256")], gated, 0.0) == []
    )  # nothing to compare


def test_a_version_is_scored_again_the_way_it_was_trained(registry: Registry) -> None:
    version = add_version(registry, "ip")  # records none of it: the defaults
    assert trained_options(version) == {"quantize": "none", "text_field": "text", "spec": EvalSpec()}
    training = {"quantize": "4bit", "text_field": "body", "eval": {"max_length": 64, "stride": 32}}
    options = trained_options(version.model_copy(update={"training": training}))
    assert (options["quantize"], options["text_field"]) == ("4bit", "body")
    assert (options["spec"].max_length, options["spec"].stride) == (64, 32)


def test_the_matrix_shows_the_newest_setting_and_names_the_others(
    adapters, registry: Registry, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    data = dataset("held")
    add_version(registry, "ip", eval_data=["held"], scores={"held": 2.5}, setting=NF4)
    add_version(registry, "ip", parent="ip@1", scores={"held": 2.75}, setting=NF4)
    registry.record_base_evals(BASE, [nll(data, 3.5, NF4), nll(data, 3.25, FP32)])
    registry.record_evals("ip@1", [nll(data, 2.25, FP32)])  # by hand, last

    matrix = json.loads(adapters("evals", "ip", "--json").stdout)
    assert (matrix["setting"], matrix["other_settings"]) == (FP32, [NF4])
    v1, v2 = matrix["versions"]
    assert v1["scores"][data.digest]["nll"] == 2.25
    assert v1["scores"][data.digest]["vs_base"]["before"] == 3.25
    assert v2["scores"] == {}  # ip@2 has no FP32 score; its NF4 one is not shown in its place
    assert matrix["bases"] == {BASE.fingerprint: {data.digest: 3.25}}

    nf4 = json.loads(adapters("evals", "ip", "--setting", NF4, "--json").stdout)
    assert (nf4["setting"], nf4["other_settings"]) == (NF4, [FP32])
    change = nf4["versions"][1]["scores"][data.digest]["vs_parent"]
    assert (change["before"], change["after"]) == (2.5, 2.75)
    assert nf4["versions"][1]["scores"][data.digest]["vs_base"]["before"] == 3.5

    table = " ".join(adapters("evals", "ip").stdout.split())
    assert f"scored as {FP32}" in table
    assert f"ip also has scores in {NF4}, left out here" in table
    assert f"`adapters evals ip --setting '{NF4}'`" in table

    unknown = adapters("evals", "ip", "--setting", "bf16 w512/s256")
    assert unknown.exit_code == 3
    assert unknown.stderr.strip() == (
        f"error: ip has no scores in the setting 'bf16 w512/s256'; its settings: '{FP32}', '{NF4}'"
    )

    general = tmp_path / "general.jsonl"
    general.write_text('{"text": "general text"}\n')
    hint = adapters("suite", "add", "ip", str(general))
    assert hint.exit_code == 0, hint.output
    assert f"ip's latest scores are in {FP32}" in " ".join(hint.stderr.split())


def test_the_model_card_states_the_one_setting_it_shows(registry: Registry) -> None:
    data = dataset("held")
    add_version(registry, "ip", eval_data=["held"], scores={"held": 2.5}, setting=NF4)
    registry.record_base_evals(BASE, [nll(data, 3.5, NF4), nll(data, 3.0, FP32)])
    registry.record_evals("ip@1", [nll(data, 2.25, FP32)])

    card = ModelCard(build_card(registry, registry.resolve("ip@1"), repo_id="acme/ip", relation="adapter"))
    [result] = card.data.eval_results
    assert (result.metric_type, result.metric_value) == ("nll", 2.25)  # the FP32 score only
    assert card.data.loraledger["eval_setting"] == FP32
    assert f"scored as `{FP32}`" in card.text
    short = f"`{data.digest.split(':')[1][:12]}`"
    [row] = [line for line in card.text.splitlines() if short in line]
    assert row.split("|")[3:5] == [" 2.2500 ", " 3.0000 "]  # this version and the base, both FP32

"""Scores in different scoring settings are stored apart and read back apart, on SQLite and PostgreSQL:
a version's scores, the base-score cache, and the matrix built from them."""

from support.registry_factory import BASE, add_version, dataset

from loraledger.registry import Registry
from loraledger.registry.forgetting import latest_scores
from loraledger.schemas.records import NewEval

NF4, FP32 = "nf4/bf16 w512/s256", "fp32 w512/s256"


def nll(text: str, value: float, setting: str) -> NewEval:
    return NewEval(dataset=dataset(text), metric="nll", value=value, setting=setting, label=text)


def test_results_in_two_settings_are_kept_apart(registry: Registry) -> None:
    add_version(registry, "ip", scores={"held": 2.5}, setting=NF4)
    registry.record_evals("ip@1", [nll("held", 2.25, FP32)])  # by hand, later, in full precision
    digest = dataset("held").digest

    results = registry.resolve("ip@1").evals
    assert sorted((r.setting, r.value) for r in results) == [(FP32, 2.25), (NF4, 2.5)]
    assert latest_scores(results, setting=NF4) == {"ip@1": {digest: 2.5}}
    assert latest_scores(results, setting=FP32) == {"ip@1": {digest: 2.25}}
    assert {r.setting for r in registry.eval_results("ip")} == {NF4, FP32}

    # The base cache: one entry per (dataset, setting); a lookup in one setting never sees the other.
    registry.record_base_evals(BASE, [nll("held", 3.0, NF4)])
    registry.record_base_evals(BASE, [nll("held", 2.75, FP32)])
    cached = registry.base_evals(BASE)
    assert sorted((r.setting, r.value) for r in cached) == [(FP32, 2.75), (NF4, 3.0)]
    assert latest_scores(cached, setting=NF4) == {None: {digest: 3.0}}
    assert latest_scores(cached, setting="int8/fp32 w512/s256") == {}

    newest = registry.score_matrix("ip")  # the by-hand FP32 scores are the most recent
    assert newest.setting == FP32 and newest.other_settings == [NF4]
    cell = newest.row(1).cells[digest]
    assert (cell.nll, cell.vs_base.before if cell.vs_base else None) == (2.25, 2.75)
    nf4 = registry.score_matrix("ip", setting=NF4)
    cell = nf4.row(1).cells[digest]
    assert (cell.nll, cell.vs_base.before if cell.vs_base else None) == (2.5, 3.0)

"""The notebook story with the documented API only (no `loraledger.cli`): open a ledger, train two
versions of `legal` on the shipped samples, read their scores, roll back, merge."""

from pathlib import Path

import pytest

import loraledger

pytestmark = pytest.mark.slow

# Small settings so that the story runs in a couple of minutes on a CPU; the data are the shipped files.
FAST = {"epochs": 0.1, "max_length": 128, "batch_tokens": 1024}


def test_notebook_story(tmp_path: Path, samples: Path, tiny_base: Path) -> None:
    legal = samples / "legal"
    ledger = loraledger.open(tmp_path / "ledger")

    first = ledger.train(
        "legal", legal / "update-1.jsonl", eval=legal / "update-1-eval.jsonl", base="builtin:tiny", **FAST
    )
    assert first.version.ref == "legal@1" and first.promoted
    assert first.version.parent is None
    assert set(first.scores) == {"update-1-eval"}

    ledger.set_threshold("legal", 0.5)  # this story is about the API, not about the gate holding back
    second = ledger.train("legal", legal / "update-2.jsonl", eval=[legal / "update-2-eval.jsonl"], **FAST)
    assert second.version.ref == "legal@2" and second.version.parent == "legal@1"
    assert second.promoted and second.regressions == []
    assert ledger.version("legal").number == 2  # current moved
    assert second.version.training["epochs"] == 0.1  # the keyword reached the recipe

    # Scores per (version, eval set), all in one setting: v2 on both splits (the suite grew), and v1
    # on the new split too (scored when v2 came, so that the matrix compares like with like).
    scores = ledger.scores("legal")
    nll = {(s.ref, s.label): s.value for s in scores if s.metric == "nll" and s.ref}
    assert set(nll) == {
        (ref, label) for ref in ("legal@1", "legal@2") for label in ("update-1-eval", "update-2-eval")
    }
    assert all(value > 0 for value in nll.values())
    assert nll[("legal@2", "update-2-eval")] == pytest.approx(second.scores["update-2-eval"])
    assert len({s.setting for s in scores}) == 1
    assert [entry.label for entry in ledger.suite("legal")] == ["update-1-eval", "update-2-eval"]
    matrix = ledger.forgetting("legal").matrix
    assert [row.version.number for row in matrix.rows] == [1, 2]
    assert scores[0].to_dict()["dataset_digest"].startswith("sha256:")

    event = ledger.rollback("legal", reason="keep the permissive-only adapter")
    assert (event.from_version, event.to_version) == (2, 1)
    assert ledger.version("legal").ref == "legal@1"
    assert ledger.history("legal")[-1].reason == "keep the permissive-only adapter"

    merged = ledger.merge("legal@2", tmp_path / "merged")
    folder = tmp_path / "merged"
    assert Path(merged.details["path"]) == folder.resolve()
    assert sorted(p.name for p in folder.glob("*.safetensors")) != []
    assert (folder / "config.json").is_file()
    assert merged.details["max_logit_diff"] <= merged.details["tolerance"]
    assert ledger.version("legal@2").publications[-1].kind == "merge"  # recorded on the version

"""An adapter trained on a 4-bit base, scored again by hand in full precision: the two settings are
recorded apart, `adapters eval` matches the train-time scores by default, and neither the matrix nor
the gate of the next update mixes a 4-bit number with an fp32 one."""

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from loraledger.schemas.specs import EvalSpec

pytestmark = pytest.mark.slow
TINY = ["--max-length", "64", "--batch-tokens", "512", "--epochs", "1", "--warmup", "0", "-q"]
# On this (CPU) machine: fp32 compute; the default eval window of 512 tokens, stride 256.
NF4, FP32 = "nf4/fp32 w512/s256", "fp32 w512/s256"


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    from loraledger.cli.demo import one_thread

    with one_thread():
        yield


def subset(source: Path, path: Path, rows: int) -> Path:
    path.write_text("\n".join(source.read_text().splitlines()[:rows]) + "\n")
    return path


def run_json(adapters, *args: str) -> Any:  # type: ignore[no-untyped-def]
    result = adapters(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def nll_of(evals: list[dict[str, Any]], setting: str) -> list[float]:
    return [e["value"] for e in evals if e["metric"] == "nll" and e["setting"] == setting]


def test_a_4bit_adapter_scored_in_fp32_keeps_the_settings_apart(
    adapters, samples: Path, tiny_base: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    legal = samples / "legal"
    data = subset(legal / "update-1.jsonl", tmp_path / "update-1.jsonl", 12)
    held = subset(legal / "update-1-eval.jsonl", tmp_path / "held.jsonl", 4)
    trained = adapters(
        "train", "q4", "--base", "builtin:tiny", "--data", str(data), "--eval", str(held),
        "--quantize", "4bit", *TINY,
    )  # fmt: skip
    assert trained.exit_code == 0, trained.output
    assert re.search(rf"held: nll \d+\.\d{{4}} \({re.escape(NF4)}\)", trained.stdout), trained.stdout
    shown = run_json(adapters, "show", "q4@1")
    assert shown["training"]["eval"] == EvalSpec().model_dump()  # recorded, for `adapters eval` later
    [trained_nll] = nll_of(shown["evals"], NF4)
    assert nll_of(shown["evals"], FP32) == []

    from loraledger.settings import Settings

    registry = Settings.load().open_registry()
    base = registry.resolve("q4@1").base
    [base_nf4] = [e.value for e in registry.base_evals(base) if e.metric == "nll" and e.setting == NF4]

    # By hand in full precision: another setting, so scored (the 4-bit score is no fp32 score) ...
    by_hand = run_json(adapters, "eval", "q4@1", "--data", str(held), "--quantize", "none")
    [line] = by_hand["scores"]
    assert by_hand["setting"] == FP32 and line["scored_now"]
    assert line["nll"] != pytest.approx(trained_nll, abs=1e-6)  # 4-bit weights score differently
    [base_fp32] = [e.value for e in registry.base_evals(base) if e.metric == "nll" and e.setting == FP32]
    assert line["base_nll"] == pytest.approx(base_fp32) and base_fp32 != pytest.approx(base_nf4, abs=1e-6)
    fp32_nll = line["nll"]
    # ... and by default the way it was trained: the train-time score, read back, against the 4-bit base.
    default = run_json(adapters, "eval", "q4@1", "--data", str(held))
    [line] = default["scores"]
    assert default["setting"] == NF4 and not line["scored_now"]
    assert (line["nll"], line["base_nll"]) == (pytest.approx(trained_nll), pytest.approx(base_nf4))
    evals = run_json(adapters, "show", "q4@1")["evals"]
    assert (nll_of(evals, NF4), nll_of(evals, FP32)) == ([trained_nll], [fp32_nll])

    # The matrix: the newest setting (fp32, scored last), its cells against the fp32 base only.
    matrix = run_json(adapters, "evals", "q4")
    assert (matrix["setting"], matrix["other_settings"]) == (FP32, [NF4])
    [digest] = matrix["versions"][0]["scores"]
    cell = matrix["versions"][0]["scores"][digest]
    assert (cell["nll"], cell["vs_base"]["before"]) == (pytest.approx(fp32_nll), pytest.approx(base_fp32))
    nf4 = run_json(adapters, "evals", "q4", "--setting", NF4)
    cell = nf4["versions"][0]["scores"][digest]
    assert (cell["nll"], cell["vs_base"]["before"]) == (pytest.approx(trained_nll), pytest.approx(base_nf4))

    # The gate of a second 4-bit update compares it with q4@1's 4-bit score, not the newer fp32 one.
    assert adapters("suite", "threshold", "q4", "0").exit_code == 0  # any worsening holds it back
    more = subset(legal / "update-2.jsonl", tmp_path / "update-2.jsonl", 12)
    second = adapters("train", "q4", "--data", str(more), "--quantize", "4bit", "--lr", "3e-3", *TINY)
    assert second.exit_code == 0, second.output
    evals = run_json(adapters, "show", "q4@1")["evals"]
    assert (nll_of(evals, NF4), nll_of(evals, FP32)) == ([trained_nll], [fp32_nll])  # nothing rescored
    [after] = nll_of(run_json(adapters, "show", "q4@2")["evals"], NF4)
    held_back = after > trained_nll
    listed = run_json(adapters, "list", "q4")
    assert [v["current"] for v in listed] == ([True, False] if held_back else [False, True])
    if held_back:
        assert f"NLL {trained_nll:.4f} -> {after:.4f}" in second.stdout
    matrix = run_json(adapters, "evals", "q4")  # q4@2's 4-bit scores are now the newest
    assert (matrix["setting"], matrix["other_settings"]) == (NF4, [FP32])
    change = matrix["versions"][1]["scores"][digest]["vs_parent"]
    assert (change["before"], change["after"]) == (pytest.approx(trained_nll), pytest.approx(after))

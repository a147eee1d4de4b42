"""Finding 8 of issue 17: a run that silently did not train. With the default warm-up, a one-step run
took its only step at learning rate 0 and adapters trained on different data came out identical."""

import json
from pathlib import Path

import pytest
from support.refusals import TEXTS


@pytest.mark.parametrize(
    ("warmup", "total", "expected"),
    [(0.05, 1, 0), (0.05, 2, 1), (0.05, 100, 5), (3, 2, 1), (3, 10, 3), (0, 1, 0), (0.5, 3, 2)],
)
def test_warm_up_leaves_at_least_one_step_at_a_non_zero_rate(
    warmup: float, total: int, expected: int
) -> None:
    from loraledger.trainer.recipe import warmup_steps

    assert warmup_steps(warmup, total) == expected


def test_optimizer_steps_count_as_the_trainer_does() -> None:
    from loraledger.trainer.recipe import optimizer_steps

    assert optimizer_steps(1, 1, 0.2) == 1
    assert optimizer_steps(10, 4, 1) == 3  # a partial accumulation is a step
    assert optimizer_steps(10, 1, 2.5) == 25


def test_unmoved_weights_are_detected() -> None:
    import torch

    from loraledger.trainer.recipe import moved, snapshot_trainable

    model = torch.nn.Linear(4, 2)
    model.bias.requires_grad_(False)
    before = snapshot_trainable(model)
    assert set(before) == {"weight"} and not moved(model, before)
    with torch.no_grad():
        model.bias += 1  # frozen: not the adapter
    assert not moved(model, before)
    with torch.no_grad():
        model.weight[0, 0] += 1e-6
    assert moved(model, before)


@pytest.mark.slow
def test_a_one_step_run_trains(adapters, tiny_base: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    digests = []
    for name, rows in (("a", TEXTS[:10]), ("b", TEXTS[20:30])):
        data = tmp_path / f"{name}.jsonl"
        data.write_text("".join(json.dumps({"text": row}) + "\n" for row in rows))
        result = adapters(
            "train", name, "--base", "builtin:tiny", "--data", str(data), "--epochs", "0.2",
            "--max-length", "64", "--no-eval", "-q",
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        shown = json.loads(adapters("show", f"{name}@1", "--json").stdout)
        assert shown["training"].get("steps", 1) == 1
        digests.append(shown["artifact_digest"])
    assert digests[0] != digests[1]

"""The retention budget (workflows/retention.py, trainer/scaling.py): exact candidates, bisection
against a brute-force grid, the registered outcome, an unmet budget, and crashes mid-search."""

import json
from pathlib import Path
from typing import Any

import pytest
from support.tiny_models import random_adapter

from loraledger.retention import largest_within
from loraledger.schemas.errors import InvalidInput
from loraledger.schemas.specs import Recipe, RetentionSpec

LEGAL = [f"Clause {i}: the licensee shall keep every notice intact and pay fee {i}." for i in range(48)]
CODE = [f"def f{i}(x): return [y * {i} for y in range(x)] if x else None" for i in range(24)]
SMALL = {"r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"]}
HARD = {"learning_rate": 3e-2, "scheduler": "constant", "epochs": 3, "max_length": 64, "batch_tokens": 256}


def write(path: Path, texts: list[str]) -> Path:
    path.write_text("".join(json.dumps({"text": text}) + "\n" for text in texts))
    return path


# ---- pure parts ---------------------------------------------------------------------------------


def search(excess: Any, steps: int) -> tuple[float, list[float]]:
    """largest_within over (0, 1) with its probes, as the retention search calls it."""
    tried: list[float] = []

    def probe(alpha: float) -> float:
        tried.append(alpha)
        return float(excess(alpha))

    found = largest_within(probe, steps, low=(0.0, excess(0.0)), high=(1.0, excess(1.0)))
    return found, tried


@pytest.mark.parametrize("steps", [1, 3, 5])
@pytest.mark.parametrize("edge", [0.0, 0.01, 0.3, 0.5, 0.77, 0.99])
def test_the_search_finds_the_largest_grid_point_within(steps: int, edge: float) -> None:
    found, tried = search(lambda alpha: alpha - edge, steps)
    grid = [k / 2**steps for k in range(2**steps + 1)]
    assert found == max(a for a in grid if a <= edge)
    assert 0 not in tried and 1 not in tried  # the ends are known: the start and the raw update
    assert len(tried) <= steps  # a straight line is found at once: never more probes than bisection


@pytest.mark.parametrize("seed", range(40))
def test_on_any_monotone_curve_the_search_agrees_with_a_brute_force_grid(seed: int) -> None:
    import random

    rng = random.Random(seed)
    steps = rng.choice([3, 4, 5, 6])
    # A monotone curve with flat stretches and jumps (the worst case for interpolation) crossing 0.
    knots = sorted(rng.uniform(-1, 1) for _ in range(rng.randint(2, 7)))
    heights = sorted(rng.uniform(-0.2, 0.3) for _ in knots)
    budget = rng.uniform(0.001, 0.1)

    def excess(alpha: float) -> float:
        return (
            max([h for k, h in zip(knots, heights, strict=True) if k <= alpha], default=-0.3) * alpha - budget
        )

    if excess(1.0) <= 0:
        return  # within the budget at full strength: no search
    found, tried = search(excess, steps)
    grid = [k / 2**steps for k in range(2**steps + 1)]
    assert found == max(a for a in grid if excess(a) <= 0)
    assert len(tried) <= 2 * steps  # interpolation's chances, then bisection


def test_a_curved_forgetting_needs_fewer_candidates_than_bisection() -> None:
    # The shape measured on the shipped update 2: convex, 10.3% at full strength, budget 5%.
    found, tried = search(lambda alpha: 0.103 * (0.55 * alpha + 0.45 * alpha**2) - 0.05, 5)
    assert found == max(k / 32 for k in range(33) if 0.103 * (0.55 * k / 32 + 0.45 * (k / 32) ** 2) <= 0.05)
    assert len(tried) <= 3 < 5


class FakeSession:
    """Scores from a formula of (alpha, set): the search's logic without models."""

    def __init__(self, forgetting: dict[str, Any]) -> None:
        self.forgetting, self.alpha = forgetting, 1.0
        self.scored: list[tuple[float, str]] = []

    def use(self, adapter: Path) -> None:
        self.alpha = float(adapter.name.removeprefix("alpha-"))

    def score(self, label: str) -> Any:
        from loraledger.schemas.jobs import EvalScore

        self.scored.append((self.alpha, label))
        nll = 1.0 + self.forgetting[label](self.alpha)
        return EvalScore(nll=nll, perplexity=2.718**nll, tokens=100)


def test_a_set_over_the_budget_only_between_the_ends_sends_the_search_below() -> None:
    from loraledger.retention import Judge, RetentionOutcome, strongest_within
    from loraledger.schemas.records import NewDataset
    from loraledger.suites import ScoringSet, evals_from_scores

    sets = {
        d: ScoringSet(d, NewDataset(digest=d, format="jsonl", rows=1), role)
        for d, role in (("general", "retention"), ("old", "update"), ("new", "update"))
    }
    forgetting = {
        "general": lambda a: 0.1 * a,  # at risk: +10% at full strength, within 6% up to alpha 0.6
        "old": lambda a: 0.2 if 0.25 < a < 1 else 0.0,  # within at both ends, over in between
        "new": lambda a: -0.2 * a,  # the update's own split: where it gains
    }
    judge = Judge(
        budget=0.06,
        min_gain_share=0.1,
        setting="fp32 w512/s256",
        start=dict.fromkeys(sets, 1.0),
        gated={"general": "general", "old": "old"},
        domain=["new"],
        labels={d: d for d in sets},
    )
    raw_scores = FakeSession(forgetting)
    raw_evals = evals_from_scores({d: raw_scores.score(d) for d in sets}, sets, judge.setting)
    judge.raw_gain = judge.gain(judge.nll_of(raw_evals)) or 0.0
    raw = judge.candidate("raw", 1.0, 0.0, raw_evals, 0.0)
    outcome = RetentionOutcome(0.06, 0.1, "base", judge.setting, 10.0, [raw], None)
    session = FakeSession(forgetting)

    chosen = strongest_within(
        session, lambda alpha: Path(f"alpha-{alpha}"), sets, judge, raw, outcome, steps=3, replay=0.0
    )

    # The brute-force answer on the 1/8 grid: "old" is over the budget for every alpha above 1/4.
    assert chosen is not None and chosen.alpha == 0.25 and chosen.complete and chosen.acceptable
    assert chosen.gain_share == pytest.approx(0.25)
    tried = [(c.alpha, c.complete, c.within_budget) for c in outcome.candidates[1:]]
    assert tried == [
        (0.625, False, False),  # over on "general": nothing else scored
        (0.5, True, False),  # settled on, completed: over on "old", which joins the sets at risk
        (0.125, False, True),
        (0.25, True, True),  # settled on again, completed: within everywhere
        (0.375, False, False),
    ]
    assert session.scored[:1] == [(0.625, "general")]  # a probe stops at its first set over the budget
    assert "new" in outcome.candidates[2].scores
    assert outcome.candidates[2].forgetting["old"] == pytest.approx(0.2)


def test_budget_is_written_as_people_write_it() -> None:
    assert RetentionSpec(max_forgetting="5%").max_forgetting == pytest.approx(0.05)  # type: ignore[arg-type]
    assert RetentionSpec(max_forgetting="0.03").max_forgetting == pytest.approx(0.03)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not a share"):
        RetentionSpec(max_forgetting="five")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        RetentionSpec(max_forgetting="150%")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="between 0 and 1"):
        RetentionSpec(replay_shares=[0.2, 1.0])


def test_the_report_plots_probes_by_strength_and_complete_candidates_by_gain() -> None:
    import io

    from matplotlib.image import imread

    from loraledger.retention_report import searches_html, trace_png

    def candidate(
        remedy: str, alpha: float, worst: float, gain: float | None, **extra: Any
    ) -> dict[str, Any]:
        shape = {"remedy": remedy, "alpha": alpha, "replay": 0.0, "complete": True, "chosen": False}
        return shape | {"worst_forgetting": worst, "gain_share": gain} | extra

    trace = {
        "budget": 0.05,
        "min_gain_share": 0.5,
        "reference": "ip@1",
        "remedy": "strength",
        "train_seconds": 20.0,
        "search_seconds": {"strength": 8.0, "replay": 0.0},
        "candidates": [
            candidate("raw", 1.0, 0.10, 1.0),
            candidate("strength", 0.5, 0.04, None, complete=False),  # a probe: no gain scored
            candidate("strength", 0.59375, 0.052, None, complete=False),
            candidate("strength", 0.5625, 0.048, 0.73, chosen=True),
        ],
    }
    image = imread(io.BytesIO(trace_png("ip@4", trace)))
    assert image.shape[:2] == (360, 850)  # the two panels side by side
    page = searches_html({"ip@4": trace})
    assert "4 candidates; search 8s next to 20s of training" in page and "data:image/png;base64," in page


# ---- exact candidates ---------------------------------------------------------------------------


def logits(base: Path, adapter: Path | None, ids: Any, deltas: dict[str, Any] | None = None) -> Any:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    if deltas:
        with torch.no_grad():
            for name, delta in deltas.items():
                model.get_parameter(name).add_(delta)
    if adapter is not None:
        model = PeftModel.from_pretrained(model, str(adapter))
    model.eval()
    with torch.no_grad():
        return model(input_ids=ids).logits


def weight_deltas(folder: Path) -> dict[str, Any]:
    """base parameter name -> scale * B @ A, read from a saved adapter: the explicit update."""
    from loraledger.trainer.scaling import lora_scale, read_adapter

    config, tensors = read_adapter(folder)
    scale = lora_scale(config)
    deltas = {}
    for key, a in tensors.items():
        if ".lora_A." in key:
            b = tensors[key.replace(".lora_A.", ".lora_B.")]
            name = key.removeprefix("base_model.model.").replace(".lora_A.weight", ".weight")
            deltas[name] = scale * b @ a
    return deltas


@pytest.fixture(scope="module")
def small_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from support.tiny_models import bpe_tokenizer, save_base

    return save_base(tmp_path_factory.mktemp("bases") / "tiny", bpe_tokenizer(LEGAL + CODE, vocab_size=300))


@pytest.mark.parametrize("alpha", [0.25, 0.6, 1.0])
def test_a_first_versions_candidate_is_peft_rescale_adapter_scale(
    small_base: Path, tmp_path: Path, alpha: float
) -> None:
    import torch
    from peft import PeftModel
    from peft.helpers import rescale_adapter_scale
    from transformers import AutoModelForCausalLM

    from loraledger.trainer.scaling import scaled_adapter

    new = random_adapter(small_base, tmp_path / "new", seed=1)
    candidate = scaled_adapter(new, None, alpha, tmp_path / "candidate")
    ids = torch.randint(0, 200, (2, 24))
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(small_base), str(new)).eval()
    with torch.no_grad(), rescale_adapter_scale(model, alpha):
        expected = model(input_ids=ids).logits
    got = logits(small_base, candidate, ids)
    assert torch.allclose(got, expected, atol=1e-5, rtol=0)
    if alpha < 1:  # and the candidate is not the raw update in disguise
        assert not torch.allclose(got, logits(small_base, new, ids), atol=1e-3)


@pytest.mark.parametrize("rslora", [False, True])
@pytest.mark.parametrize("alpha", [0.3, 0.75])
def test_a_continuations_candidate_is_the_explicit_weighted_sum(
    small_base: Path, tmp_path: Path, alpha: float, rslora: bool
) -> None:
    import torch

    from loraledger.trainer.scaling import scaled_adapter

    parent = random_adapter(small_base, tmp_path / "parent", seed=2, rslora=rslora)
    new = random_adapter(small_base, tmp_path / "new", seed=3, rslora=rslora)
    candidate = scaled_adapter(new, parent, alpha, tmp_path / "candidate")
    # W0 + dP + alpha (dN - dP), added to the base weights by hand.
    parent_deltas, new_deltas = weight_deltas(parent), weight_deltas(new)
    explicit = {k: (1 - alpha) * parent_deltas[k] + alpha * new_deltas[k] for k in new_deltas}
    ids = torch.randint(0, 200, (2, 24))
    expected = logits(small_base, None, ids, deltas=explicit)
    assert torch.allclose(logits(small_base, candidate, ids), expected, atol=1e-5, rtol=0)
    config = json.loads((candidate / "adapter_config.json").read_text())
    assert config["r"] == 8  # the cat of two rank-4 updates: exact, twice the rank


def test_adapters_without_an_exact_candidate_are_refused(small_base: Path, tmp_path: Path) -> None:
    from loraledger.trainer.scaling import NotScalable, scaled_adapter

    new = random_adapter(small_base, tmp_path / "new", seed=1)
    config = json.loads((new / "adapter_config.json").read_text())
    (new / "adapter_config.json").write_text(json.dumps(config | {"use_dora": True}))
    with pytest.raises(NotScalable, match="DoRA"):
        scaled_adapter(new, None, 0.5, tmp_path / "candidate")


# ---- the workflow on a tiny base ----------------------------------------------------------------


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    return {
        "v1": write(tmp_path / "v1.jsonl", LEGAL[:24]),
        "v1-eval": write(tmp_path / "v1-eval.jsonl", LEGAL[24:32]),
        "v2": write(tmp_path / "v2.jsonl", [t.upper() for t in LEGAL[32:]] * 2),
        "v2-eval": write(tmp_path / "v2-eval.jsonl", [t.upper() for t in LEGAL[:8]]),
        "general": write(tmp_path / "general.jsonl", CODE),
    }


def ledger_with_suite(files: dict[str, Path]) -> Any:
    import loraledger

    ledger = loraledger.open()
    ledger.add_to_suite("ip", files["general"], label="general")
    return ledger


def recipe(**retention: Any) -> Recipe:
    return Recipe.model_validate({"lora": SMALL, "training": HARD, "retention": retention})


def raw_forgetting(ledger: Any, ref: str) -> float:
    trace = ledger.version(ref).training["retention"]
    return float(trace["candidates"][0]["worst_forgetting"])


@pytest.mark.slow
def test_bisection_on_real_scores_matches_a_brute_force_grid(
    small_base: Path, files: dict[str, Path]
) -> None:
    from loraledger.suites import Scorer, base_scores, suite_sets
    from loraledger.trainer.models import resolve_base
    from loraledger.trainer.scaling import scaled_adapter

    ledger = ledger_with_suite(files)
    first = ledger.train("ip", files["v1"], eval=files["v1-eval"], base=str(small_base), recipe=recipe())
    registry = ledger.registry
    version = first.version
    source = resolve_base(version.base.model_id, cache_dir=ledger.settings.cache_dir)
    scorer = Scorer(registry, version.base, lambda: source, spec=recipe().eval)
    general = {d: s for d, s in suite_sets(registry, "ip").items() if s.role == "retention"}
    [before] = [v for d, v in base_scores(registry, version.base, scorer.setting).items() if d in general]
    folder = Path(ledger.settings.home) / "adapter"
    registry.checkout(version.ref, folder)

    def forgetting(alpha: float) -> float:
        candidate = scaled_adapter(folder, None, alpha, folder.parent / f"a{alpha}")
        [nll] = [e.value for e in scorer.score(candidate, general) if e.metric == "nll"]
        return (nll - before) / before

    steps = 3
    grid = {k / 2**steps: forgetting(k / 2**steps) for k in range(1, 2**steps + 1)}
    assert grid[1.0] > 0, "the update must forget for this test to mean anything"
    assert list(grid.values()) == sorted(grid.values())  # monotone here, as bisection assumes
    budget = (grid[0.375] + grid[0.5]) / 2
    found = largest_within(
        lambda alpha: forgetting(alpha) - budget,
        steps,
        low=(0.0, -budget),
        high=(1.0, grid[1.0] - budget),
    )
    assert found == max(alpha for alpha, value in grid.items() if value <= budget) == 0.375


@pytest.mark.slow
def test_a_continuation_over_budget_goes_live_weakened_with_its_trace(
    small_base: Path, files: dict[str, Path]
) -> None:
    ledger = ledger_with_suite(files)
    ledger.train("ip", files["v1"], eval=files["v1-eval"], base=str(small_base), recipe=recipe())
    # The same update twice (training is deterministic): first to learn how much it forgets...
    probe = ledger.train(
        "ip", files["v2"], eval=files["v2-eval"], parent="ip@1", recipe=recipe(max_forgetting=0.99)
    )
    forgot = raw_forgetting(ledger, probe.version.ref)
    assert forgot > 0.002, forgot
    # ...then with half that as the budget.
    budget = forgot / 2
    result = ledger.train(
        "ip",
        files["v2"],
        eval=files["v2-eval"],
        parent="ip@1",
        recipe=recipe(max_forgetting=budget, min_gain_share=0.0, replay_shares=[]),
    )
    raw, chosen = ledger.version("ip@3"), result.version
    assert chosen.ref == "ip@4" and chosen.parent == "ip@3" and chosen.is_current and result.promoted
    assert not raw.is_current and raw.parent == "ip@1"
    trace = chosen.training["retention"]
    assert trace["remedy"] == "strength" and trace["raw"] == "ip@3" and trace["reference"] == "ip@1"
    assert trace == raw.training["retention"] | {"raw": "ip@3"}  # the raw update holds the same search
    steps = RetentionSpec().bisection_steps
    assert 2 <= len(trace["candidates"]) <= 1 + 2 * steps
    picked = [c for c in trace["candidates"] if c["chosen"]]
    assert len(picked) == 1 and picked[0]["alpha"] == trace["alpha"] < 1
    assert picked[0]["worst_forgetting"] <= budget
    # The chosen candidate is scored on every set, like the raw update; probes on the sets at risk.
    assert picked[0]["complete"] and set(picked[0]["scores"]) == set(trace["candidates"][0]["scores"])
    assert picked[0]["gain_share"] is not None
    assert all(
        set(c["scores"]) <= {"general", "v1-eval"} for c in trace["candidates"][1:] if not c["complete"]
    )
    # The largest alpha tried within the budget is the chosen one; every larger one was over it.
    tried = {c["alpha"]: c for c in trace["candidates"]}
    assert all(c["worst_forgetting"] > budget for a, c in tried.items() if a > trace["alpha"])
    assert all(c["seconds"] > 0 for c in trace["candidates"][1:])
    # The version's recorded scores are the chosen candidate's, and its rank is the exact cat's.
    general = next(e.value for e in chosen.evals if e.label == "general" and e.metric == "nll")
    assert general == pytest.approx(picked[0]["scores"]["general"])
    assert chosen.lora["r"] == 2 * SMALL["r"]
    # The report draws the search: one PNG of two panels (against strength, against gain kept).
    report = ledger.report("ip", Path(ledger.settings.home) / "report.html").read_text()
    assert "Retention searches" in report and f"{len(trace['candidates'])} candidates" in report
    assert 'alt="forgetting against strength and gain for ip@4"' in report
    # And it continues like any version.
    continued = Recipe.model_validate({"training": HARD})  # the LoRA shape is inherited: r = 8 now
    again = ledger.train("ip", files["v1"], eval=files["v1-eval"], recipe=continued)
    assert again.version.parent == "ip@4"


@pytest.mark.slow
def test_an_unmet_budget_exits_non_zero_and_nothing_goes_live(
    adapters: Any, small_base: Path, files: dict[str, Path], tmp_path: Path
) -> None:
    ledger_with_suite(files)
    config = tmp_path / "recipe.json"
    config.write_text(
        json.dumps(
            {
                "lora": SMALL,
                "training": HARD,
                "retention": {"replay_shares": [], "bisection_steps": 2, "min_gain_share": 1.0},
            }
        )
    )
    args = [
        "train",
        "ip",
        "--base",
        str(small_base),
        "--data",
        str(files["v2"]),
        "--eval",
        str(files["v2-eval"]),
    ]
    result = adapters(*args, "--config", str(config), "--max-forgetting", "0.00001%", "--quiet")
    assert result.exit_code == 6, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith("error: no candidate of ip@1"), result.stderr
    assert "Traceback" not in result.stderr
    listed = json.loads(adapters("list", "--json").stdout)
    assert [(v["ref"], v["current"]) for v in listed] == [("ip@1", False)]
    shown = json.loads(adapters("show", "ip@1", "--json").stdout)
    trace = shown["training"]["retention"]
    # 1/4 is within the budget but keeps too little of the gain (the floor is 100%); 1/2 is over it.
    assert trace["remedy"] == "unmet"
    assert [(c["remedy"], c["alpha"]) for c in trace["candidates"]] == [
        ("raw", 1.0),
        ("strength", 0.25),
        ("strength", 0.5),
    ]
    assert not any(c["chosen"] for c in trace["candidates"])
    assert "nothing met it" in adapters("show", "ip@1").stdout


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["retention-candidate@1:error", "retention-register:error"])
def test_a_crash_mid_search_leaves_nothing_half_registered(
    small_base: Path, files: dict[str, Path], monkeypatch: pytest.MonkeyPatch, fault: str
) -> None:
    ledger = ledger_with_suite(files)
    monkeypatch.setenv("ADAPTERS_FAULT", fault)
    with pytest.raises(RuntimeError, match="fault injected"):
        ledger.train(
            "ip",
            files["v2"],
            eval=files["v2-eval"],
            base=str(small_base),
            recipe=recipe(max_forgetting="0.00001%", replay_shares=[]),
        )
    monkeypatch.delenv("ADAPTERS_FAULT")
    versions = ledger.registry.store.versions("ip")
    if fault.startswith("retention-candidate"):
        assert versions == []  # the search runs before anything is registered
    else:  # between the two registrations: the raw update, complete and held back, with the trace
        [raw] = versions
        assert not raw.is_current and raw.training["retention"]["candidates"]
    assert ledger.verify().ok


def test_a_budget_needs_an_eval_split(small_base: Path, files: dict[str, Path]) -> None:
    ledger = ledger_with_suite(files)
    with pytest.raises(InvalidInput, match="needs --eval"):
        ledger.train("ip", files["v2"], base=str(small_base), recipe=recipe(max_forgetting=0.05))
    assert ledger.registry.store.versions("ip") == []

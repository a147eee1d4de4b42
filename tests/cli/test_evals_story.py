"""The forgetting story through the CLI, on a tiny model: a suite, two updates, the gate holding the
second back, the matrix, `adapters eval`, promote/--force, and the report files.

Training is the slow part, so one registry is built per module (two updates) and every test works on
its own copy of it.
"""

import base64
import contextlib
import io
import json
import shutil
import sys
import types
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow
TINY = ["--epochs", "0.5", "--max-length", "128", "--batch-tokens", "1024", "-q"]


def subset(source: Path, folder: Path, rows: int) -> Path:
    lines = source.read_text().splitlines()[:rows]
    path = folder / source.name
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny models train several times faster on one thread than on two busy ones (see cli/demo.py)."""
    from loraledger.cli.demo import one_thread

    with one_thread():
        yield


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory, samples: Path, tiny_base: Path) -> dict[str, Any]:
    """suite (general) -> lic@1 on update-1 -> threshold 0 -> lic@2 on update-2 at a high learning
    rate, which makes general text worse: held back."""
    from loraledger.cli import output
    from loraledger.cli.main import main

    root = tmp_path_factory.mktemp("story")
    data = root / "data"
    data.mkdir()
    files = {
        "general": subset(samples / "general" / "retention-eval.jsonl", data, 8),
        "u1": subset(samples / "legal" / "update-1.jsonl", data, 30),
        "u1-eval": subset(samples / "legal" / "update-1-eval.jsonl", data, 8),
        "u2": subset(samples / "legal" / "update-2.jsonl", data, 20),
        "u2-eval": subset(samples / "legal" / "update-2-eval.jsonl", data, 6),
    }
    home = root / "home"
    outputs: dict[str, str] = {}

    def run(key: str, *args: str) -> None:
        output.reset()
        stdout, stderr = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            try:
                main(["--home", str(home), *args])
            except SystemExit as exc:
                assert not exc.code, stderr.getvalue()
        outputs[key] = stdout.getvalue() + stderr.getvalue()
        output.reset()

    with pytest.MonkeyPatch.context() as env:
        env.setenv("ADAPTERS_CACHE", str(tiny_base.parent.parent))  # the tests' shared model cache
        env.setenv("ADAPTERS_USER", "tester")
        env.setenv("HF_HUB_OFFLINE", "1")
        for name in ("ADAPTERS_DB", "ADAPTERS_STORE", "ADAPTERS_HOME"):
            env.delenv(name, raising=False)
        run("suite", "suite", "add", "lic", str(files["general"]), "--label", "general")
        run(
            "v1",
            "train",
            "lic",
            "--base",
            "builtin:tiny",
            "--data",
            str(files["u1"]),
            "--eval",
            str(files["u1-eval"]),
            *TINY,
        )
        run("threshold", "suite", "threshold", "lic", "0")  # any worsening holds a version back
        run(
            "v2",
            "train",
            "lic",
            "--data",
            str(files["u2"]),
            "--eval",
            str(files["u2-eval"]),
            "--lr",
            "3e-3",
            *TINY,
        )
    return {"home": home, "files": files, "outputs": outputs}


@pytest.fixture
def lic(story: dict[str, Any], home: Path) -> dict[str, Any]:
    """A private copy of the story's registry, at this test's ADAPTERS_HOME."""
    shutil.copytree(story["home"], home)
    return story


def evals_json(adapters) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    result = adapters("evals", "lic", "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_gate_holds_the_forgetful_update_back(adapters, lic) -> None:  # type: ignore[no-untyped-def]
    versions = json.loads(adapters("list", "lic", "--json").stdout)
    assert [(v["ref"], v["current"]) for v in versions] == [("lic@1", True), ("lic@2", False)]
    said = lic["outputs"]["v2"]
    assert "held back" in said and "general" in said
    assert "--replay" in said and "adapters promote lic@2" in said
    matrix = evals_json(adapters)
    v1, v2 = matrix["versions"]
    general = next(s["digest"] for s in matrix["sets"] if s["label"] == "general")
    change = v2["scores"][general]["vs_parent"]
    assert change["after"] > change["before"]  # worse on general text: the reason it was held back
    assert f"{change['relative']:+.1%}" in said  # the CLI said by how much
    assert v2["held_back"] and not v1["held_back"] and v1["current"]
    history = json.loads(adapters("history", "lic", "--json").stdout)
    assert [e["to_version"] for e in history if e["alias"] == "current"] == [1]


def test_every_version_is_scored_on_the_whole_suite_and_the_base_once(adapters, lic) -> None:  # type: ignore[no-untyped-def]
    suite = json.loads(adapters("suite", "list", "lic", "--json").stdout)
    labels = [(s["label"], s["role"], s["learned_by"]) for s in suite["sets"]]
    assert labels == [
        ("general", "retention", None),
        ("update-1-eval", "update", 1),
        ("update-2-eval", "update", 2),
    ]
    digests = {s["digest"] for s in suite["sets"]}
    for ref in ("lic@1", "lic@2"):  # lic@1 was scored on update 2's split while lic@2 was gated
        evals = json.loads(adapters("show", ref, "--json").stdout)["evals"]
        assert {e["dataset_digest"] for e in evals if e["metric"] == "nll"} == digests
        assert all(e["value"] > 0 for e in evals)

    from loraledger.settings import Settings

    registry = Settings.load().open_registry()
    base = registry.resolve("lic@1").base
    nll = [e.dataset_digest for e in registry.base_evals(base) if e.metric == "nll"]
    assert sorted(nll) == sorted(digests)  # each set once: the second update reused the cache


def test_matrix_json_holds_the_recorded_values_and_metrics(adapters, lic) -> None:  # type: ignore[no-untyped-def]
    matrix = evals_json(adapters)
    by_label = {s["label"]: s["digest"] for s in matrix["sets"]}
    v1, v2 = matrix["versions"]
    shown = {
        e["dataset_digest"]: e["value"]
        for e in json.loads(adapters("show", "lic@2", "--json").stdout)["evals"]
        if e["metric"] == "nll"
    }
    [base] = matrix["bases"].values()
    for digest, cell in v2["scores"].items():
        assert cell["nll"] == pytest.approx(shown[digest])
        assert cell["vs_parent"]["before"] == pytest.approx(v1["scores"][digest]["nll"])
        assert cell["vs_base"]["before"] == pytest.approx(base[digest])
        assert cell["vs_base"]["absolute"] == pytest.approx(cell["nll"] - base[digest])
    u1 = by_label["update-1-eval"]
    expected_bwt = v2["scores"][u1]["nll"] - v1["scores"][u1]["nll"]
    assert v2["metrics"]["bwt"] == pytest.approx(expected_bwt)
    assert v2["metrics"]["max_forgetting"]["digest"] == u1
    assert v2["metrics"]["max_forgetting"]["forgetting"] == pytest.approx(expected_bwt)
    general = by_label["general"]
    assert v2["metrics"]["retention_relative"] == pytest.approx(
        v2["scores"][general]["nll"] / base[general] - 1
    )
    assert v1["metrics"]["bwt"] is None  # nothing learned before lic@1
    assert matrix["threshold"] == 0

    table = adapters("evals", "lic")
    assert table.exit_code == 0
    for text in ("general", "update-1-eval", "held back", "current", "BWT", "max forgetting"):
        assert text in table.stdout, text


def test_eval_records_once_per_version_and_dataset(adapters, lic, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from loraledger.settings import Settings

    registry = Settings.load().open_registry()
    data = str(subset(lic["files"]["u2"], tmp_path, 5))  # training data of lic@2: never scored yet
    before = len(registry.eval_results("lic"))
    first = adapters("eval", "lic@1", "--data", data, "--as", "copyleft train", "--json")
    assert first.exit_code == 0, first.output
    [line] = json.loads(first.stdout)["scores"]
    assert line["label"] == "copyleft train" and line["scored_now"]
    assert line["perplexity"] == pytest.approx(2.718281828 ** line["nll"], rel=1e-6)
    assert line["vs_base"] == pytest.approx(line["nll"] / line["base_nll"] - 1)
    assert len(registry.eval_results("lic")) == before + 2  # nll and perplexity

    again = json.loads(adapters("eval", "lic@1", "--data", data, "--json").stdout)
    assert not again["scores"][0]["scored_now"] and again["scores"][0]["nll"] == line["nll"]
    assert len(registry.eval_results("lic")) == before + 2  # read back, not recomputed

    base = json.loads(adapters("eval", "lic@base", "--data", data, "--json").stdout)
    assert base["base_only"] and base["scores"][0]["nll"] == pytest.approx(line["base_nll"])
    assert not base["scores"][0]["scored_now"]  # cached when lic@1 was scored

    matrix = evals_json(adapters)  # an ad-hoc set shows up as an extra column
    assert ("copyleft train", "extra") in [(s["label"], s["role"]) for s in matrix["sets"]]


def test_promote_and_rollback_move_current_by_hand(adapters, lic) -> None:  # type: ignore[no-untyped-def]
    assert adapters("promote", "lic@2", "--reason", "accepted").exit_code == 0
    assert json.loads(adapters("evals", "lic", "--json").stdout)["versions"][1]["current"]
    assert adapters("rollback", "lic").exit_code == 0
    versions = json.loads(adapters("list", "lic", "--json").stdout)
    assert [v["current"] for v in versions] == [True, False]


def test_force_moves_current_past_the_gate(adapters, lic) -> None:  # type: ignore[no-untyped-def]
    files = lic["files"]
    forced = adapters("train", "lic", "--data", str(files["u2"]), "--lr", "3e-3", "--force", *TINY)
    assert forced.exit_code == 0, forced.output
    assert forced.stdout.strip().splitlines()[-1] == "lic@3"
    assert "forced past" in forced.stdout and "adapters rollback lic" in forced.stdout
    versions = json.loads(adapters("list", "lic", "--json").stdout)
    assert [(v["ref"], v["parent"], v["current"]) for v in versions][2] == ("lic@3", "lic@1", True)
    history = json.loads(adapters("history", "lic", "--json").stdout)
    assert history[-1]["reason"] == "forced past the forgetting gate"


def test_report_png_and_html(adapters, lic, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import matplotlib.image

    png = tmp_path / "lic.png"
    assert adapters("report", "lic", "--out", str(png)).exit_code == 0
    pixels = matplotlib.image.imread(str(png))
    assert pixels.shape[0] > 200 and pixels.shape[1] > 600  # three panels side by side
    assert pixels[..., :3].std() > 0.05  # not a blank canvas

    page = tmp_path / "lic.html"
    assert adapters("report", "lic", "--out", str(page)).exit_code == 0
    parsed = Page()
    parsed.feed(page.read_text())
    matrix = evals_json(adapters)
    text = " ".join(parsed.text)
    for label in ("general", "update-1-eval", "update-2-eval"):
        assert label in text
    for version in matrix["versions"]:
        for cell in version["scores"].values():
            assert f"{cell['nll']:.4f}" in text
    assert "v2 ← v1 (held back)" in text and "v1 (current)" in text
    bwt = matrix["versions"][1]["metrics"]["bwt"]
    assert f"{bwt:+.4f}" in text
    assert [v for k, v in parsed.attributes if k == "data-version"] == ["1", "2"]
    assert parsed.svg_texts[:2] == ["v1", "current"]  # the lineage graph
    [image] = [v for k, v in parsed.attributes if k == "src"]
    assert base64.b64decode(image.removeprefix("data:image/png;base64,"))[:8] == b"\x89PNG\r\n\x1a\n"
    external = [v for k, v in parsed.attributes if k in ("href", "src") and not v.startswith("data:")]
    assert external == [] and parsed.tags.isdisjoint({"script", "link", "iframe"})  # self-contained


def test_lm_eval_results_are_recorded_through_the_harness(adapters, lic, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    calls: list[dict[str, Any]] = []

    def simple_evaluate(**kwargs: Any) -> dict[str, Any]:
        calls.append(kwargs)
        return {
            "results": {"arc_easy": {"alias": "arc_easy", "acc,none": 0.25, "acc_stderr,none": 0.04}},
            "versions": {"arc_easy": 1.0},
            "n-shot": {"arc_easy": 0},
            "n-samples": {"arc_easy": {"original": 2376, "effective": 10}},
        }

    monkeypatch.setitem(sys.modules, "lm_eval", types.SimpleNamespace(simple_evaluate=simple_evaluate))
    result = adapters("eval", "lic@1", "--lm-eval", "arc_easy", "--limit", "10", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["benchmarks"] == [
        {"task": "lm-eval arc_easy", "metric": "lm-eval:acc", "value": 0.25}
    ]
    [call] = calls
    assert call["tasks"] == ["arc_easy"] and call["limit"] == 10 and call["model"] == "hf"
    assert "peft=" in call["model_args"] and "pretrained=" in call["model_args"]
    evals = json.loads(adapters("show", "lic@1", "--json").stdout)["evals"]
    assert [e["value"] for e in evals if e["metric"] == "lm-eval:acc"] == [0.25]


class Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.attributes: list[tuple[str, str]] = []
        self.svg_texts: list[str] = []
        self.tags: set[str] = set()
        self._in_svg_text = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.attributes += [(k, v or "") for k, v in attrs]
        self._in_svg_text = tag == "text"

    def handle_endtag(self, tag: str) -> None:
        self._in_svg_text = False

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._in_svg_text and data.strip():
            self.svg_texts.append(data.strip())


def test_replay_data_is_replayed_recorded_and_stays_in_the_pool(
    adapters, lic, samples, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    general = tmp_path / "general-text.jsonl"  # ten short pieces of general text to replay
    rows = [json.loads(line) for line in (samples / "general" / "pretrain.jsonl").read_text().splitlines()]
    general.write_text("".join(json.dumps({"text": row["text"][:400]}) + "\n" for row in rows[:10]))
    trained = adapters(
        "train",
        "lic",
        "--data",
        str(lic["files"]["u2"]),
        "--replay",
        "0.5",
        "--replay-data",
        str(general),
        *TINY,
    )
    assert trained.exit_code == 0, trained.output
    version = json.loads(adapters("show", "lic@3", "--json").stdout)
    replayed = {
        use["dataset"]["source"]: use["rows"] for use in version["datasets"] if use["role"] == "replay"
    }
    assert set(replayed) == {str(lic["files"]["u1"]), str(general)}  # the lineage's data and the file
    assert sum(replayed.values()) == version["training"]["replay_rows"] == 20  # half of 40 rows
    # every use carries the tokens the trainer counted for it; a train dataset keeps its own count
    for use in version["datasets"]:
        if use["role"] in ("train", "replay"):
            assert use["tokens"] > use["rows"], use
    (train_use,) = [use for use in version["datasets"] if use["role"] == "train"]
    assert train_use["dataset"]["tokens"] == train_use["tokens"]

    from loraledger.schemas.specs import Recipe, TrainSpec
    from loraledger.settings import Settings
    from loraledger.training import _replay

    registry = Settings.load().open_registry()
    recipe = Recipe(training=TrainSpec(replay=0.9))
    sources = _replay(registry, registry.resolve("lic@3"), recipe, 100, lambda message: None)
    # a descendant of lic@3 replays the general text too, without --replay-data
    assert str(general) in {dataset.source for dataset, _ in sources}

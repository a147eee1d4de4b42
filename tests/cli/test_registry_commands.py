"""The registry's commands through the CLI, on registries built directly (no training):
list, show, lineage, alias, promote, rollback, history, datasets, diff."""

import json
from collections.abc import Callable

import pytest
from support.registry_factory import OTHER_BASE, add_version, chain, dataset

from loraledger.registry import Registry
from loraledger.settings import Settings

Run = Callable[..., object]


@pytest.fixture
def registry() -> Registry:
    """The registry the CLI sees (this test's ADAPTERS_HOME)."""
    return Settings.load().open_registry()


@pytest.fixture
def story(registry: Registry) -> Registry:
    """ip@1 -> ip@2 -> ip@3, rolled back to ip@2, continued as ip@4; champion on ip@2; a stack ip@5
    of ip@4 and style@1, not promoted; tax@1 on another base."""
    chain(registry, "ip", 3, eval_data=["held-out"], scores={"held-out": 1.5, "general": 3.0})
    registry.rollback("ip", reason="forgot general English")
    add_version(registry, "ip", parent="ip@2", data=["ip-4"], scores={"held-out": 1.25, "general": 3.0})
    registry.set_alias("ip@2", "champion", reason="best so far")
    add_version(registry, "style", data=["style"])
    add_version(
        registry, "ip", kind="stack", inputs=[("ip@4", 1.0), ("style@1", 0.5)], data=[], promote=False
    )
    add_version(registry, "tax", base=OTHER_BASE, data=["tax"])
    return registry


def lines(text: str) -> list[str]:
    return [line.rstrip() for line in text.splitlines() if line.strip()]


def row(text: str, first_cell: str) -> str:
    return next(line.rstrip() for line in text.splitlines() if line.split() and line.split()[0] == first_cell)


def test_list_fits_80_columns_and_marks_aliases(adapters, story: Registry) -> None:
    result = adapters("list")
    assert result.exit_code == 0, result.output
    assert all(len(line) <= 80 for line in result.stdout.splitlines())
    assert lines(result.stdout)[0].split() == [
        "version",
        "from",
        "base",
        "data",
        "loss",
        "created",
        "aliases",
    ]
    rows = [line.split()[0] for line in lines(result.stdout)[2:] if not line.startswith(" ")]
    assert rows == ["ip@1", "ip@2", "ip@3", "ip@4", "ip@5", "style@1", "tax@1"]
    assert row(result.stdout, "ip@4").split()[1] == "ip@2"
    assert row(result.stdout, "ip@4").endswith("current")
    assert row(result.stdout, "ip@2").endswith("champion")
    assert row(result.stdout, "ip@3").split()[1:3] == ["ip@2", "builtin:tiny"]  # abandoned, still listed
    assert row(result.stdout, "ip@3").split()[3] == dataset("ip-3").digest[7:17]
    assert row(result.stdout, "tax@1").split()[2] == "Llama-3.1-8B"
    assert "stack:" in row(result.stdout, "ip@5")


def test_list_of_one_adapter_puts_the_shared_base_in_the_caption(adapters, story: Registry) -> None:
    result = adapters("list", "tax")
    assert result.exit_code == 0, result.output
    assert "base: meta-llama/Llama-3.1-8B" in result.stdout
    assert [line.split()[0] for line in lines(result.stdout)[2:-1]] == ["tax@1"]


def test_list_json_is_complete(adapters, story: Registry) -> None:
    result = adapters("list", "ip", "--json")
    listed = json.loads(result.stdout)
    assert [(v["ref"], v["parent"], v["current"]) for v in listed] == [
        ("ip@1", None, False),
        ("ip@2", "ip@1", False),
        ("ip@3", "ip@2", False),
        ("ip@4", "ip@2", True),
        ("ip@5", None, False),
    ]
    assert listed[1]["aliases"] == ["champion"]
    assert listed[3]["train_digest"] == dataset("ip-4").digest
    assert listed[4]["inputs"] == [{"ref": "ip@4", "weight": 1.0}, {"ref": "style@1", "weight": 0.5}]
    assert "evals" not in listed[0]


def test_list_of_an_empty_registry_says_how_to_start(adapters) -> None:
    result = adapters("list")
    assert result.exit_code == 0
    assert "no adapters yet" in result.stdout
    assert json.loads(adapters("list", "--json").stdout) == []


def test_show_prints_everything_recorded(adapters, story: Registry) -> None:
    version = story.resolve("ip@4")
    result = adapters("show", "ip")
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert lines(text)[0].split() == ["ref", "ip@4", "(current)"]
    assert row(text, "parent").split() == ["parent", "ip@2"]
    flat = "".join(line.strip() for line in text.splitlines())  # digests fold over lines at 80 columns
    assert version.artifact_digest in flat
    assert dataset("ip-4").digest in flat
    assert "learning_rate=0.0002" in text and "torch 2.13.0" in text
    assert "by tester on" in text
    assert row(text, "evals").split()[1:] == [
        "held-out",
        "eval:",
        "nll",
        "=",
        "1.2500",
        "(fp32",
        "w512/s256)",
    ]
    assert "general eval: nll = 3.0000" in text

    shown = json.loads(adapters("show", "ip@v4", "--json").stdout)
    assert shown["ref"] == "ip@4" and shown["current"] is True
    assert shown["base"]["config_digest"] == version.base.config_digest
    assert {(e["label"], e["value"]) for e in shown["evals"]} == {
        ("held-out eval", 1.25),
        ("general eval", 3.0),
    }
    assert json.loads(adapters("show", "ip@champion", "--json").stdout)["ref"] == "ip@2"


@pytest.mark.parametrize(
    ("ref", "message", "code"),
    [
        (
            "ip@9",
            "error: ip@9 does not exist: ip has versions 1..5 and aliases champion (ip@2), current (ip@4)",
            3,
        ),
        (
            "ip@staging",
            "error: ip@staging does not exist: ip has no alias 'staging'; ip has versions 1..5",
            3,
        ),
        ("iq", "error: no adapter named 'iq' (did you mean ip?); known adapters: ip, style, tax", 3),
        ("ip@", "error: invalid ref 'ip@': nothing after '@'", 2),
    ],
)
def test_a_bad_ref_is_one_line_saying_what_exists(
    adapters, story: Registry, ref: str, message: str, code: int
):
    result = adapters("show", ref)
    assert result.exit_code == code
    assert result.stdout == ""
    assert len(lines(result.stderr)) == 1
    assert result.stderr.startswith(message)


def test_lineage_draws_the_tree_with_branches_and_inputs(adapters, story: Registry) -> None:
    result = adapters("lineage", "ip")
    assert result.exit_code == 0, result.output
    drawn = lines(result.stdout)
    assert drawn[0] == "ip"
    # The line of descent is flat; the abandoned ip@3 branches off ip@2; the stack has no parent.
    assert [line.split()[0:2] for line in drawn[1:]] == [
        ["├──", "ip@1"],
        ["├──", "ip@2"],
        ["│", "└──"],
        ["├──", "ip@4"],
        ["└──", "ip@5"],
        ["├──", "input"],
        ["└──", "input"],
    ]
    assert "ip@3" in drawn[3]
    assert drawn[4].endswith("← current")
    assert "champion" in drawn[2]
    assert "(no parent)" in drawn[5]
    assert drawn[6].split()[1:4] == ["input", "ip@4", "×1"]
    assert drawn[7].split()[1:4] == ["input", "style@1", "×0.5"]

    flat = json.loads(adapters("lineage", "ip", "--json").stdout)
    assert [(n["ref"], n["parent"], n["current"]) for n in flat][:4] == [
        ("ip@1", None, False),
        ("ip@2", "ip@1", False),
        ("ip@3", "ip@2", False),
        ("ip@4", "ip@2", True),
    ]
    assert flat[4]["inputs"] == [{"ref": "ip@4", "weight": 1.0}, {"ref": "style@1", "weight": 0.5}]


def test_lineage_says_where_a_version_came_from_when_the_line_above_is_not_its_parent(
    adapters, registry: Registry
) -> None:
    add_version(registry, "ip", data=["a"])
    add_version(registry, "ip", parent="ip@1", data=["b"])
    add_version(registry, "ip", parent="ip@2", data=["c"])
    add_version(registry, "ip", parent="ip@1", data=["d"])
    add_version(registry, "ip", parent="ip@1", data=["e"])
    add_version(registry, "ip", parent="ip@4", data=["f"])
    registry.rollback("ip", to="ip@5")
    drawn = [line.split(" train")[0] for line in lines(adapters("lineage", "ip").stdout)]
    assert drawn == [
        "ip",
        "├── ip@1",
        "│   ├── ip@2",
        "│   ├── ip@3",
        "│   ├── ip@4",
        "│   └── ip@6",
        "└── ip@5",
    ]
    assert "(from ip@1)" in lines(adapters("lineage", "ip").stdout)[4]


def test_alias_moves_and_is_audited(adapters, registry: Registry) -> None:
    chain(registry, "ip", 2)
    assert adapters("alias", "ip@1", "champion", "--reason", "best legal score").stdout.strip() == (
        "ip@champion -> ip@1"
    )
    assert json.loads(adapters("show", "ip@champion", "--json").stdout)["ref"] == "ip@1"
    assert adapters("alias", "ip@2", "champion").exit_code == 0
    removed = adapters("alias", "ip", "champion", "--delete", "--reason", "retired")
    assert removed.stdout.strip() == "removed ip@champion (was version 2)"
    refused = adapters("alias", "ip@1", "current")
    assert refused.exit_code == 2 and "adapters promote" in refused.stderr
    events = json.loads(adapters("history", "ip", "--json").stdout)
    assert [
        (e["alias"], e["from_version"], e["to_version"], e["reason"], e["created_by"]) for e in events
    ] == [
        ("current", None, 1, "registered", "tester"),
        ("current", 1, 2, "registered", "tester"),
        ("champion", None, 1, "best legal score", "tester"),
        ("champion", 1, 2, None, "tester"),
        ("champion", 2, None, "retired", "tester"),
    ]


def test_rollback_then_history_tells_who_moved_what_and_why(
    adapters, registry: Registry, monkeypatch
) -> None:
    chain(registry, "ip", 3)
    monkeypatch.setenv("ADAPTERS_USER", "maria")
    result = adapters("rollback", "ip", "--reason", "forgot general English")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "rolled back ip@current: ip@3 -> ip@2"
    assert (
        adapters("rollback", "ip", "--to", "ip@v3").stdout.strip() == "rolled back ip@current: ip@2 -> ip@3"
    )
    assert adapters("rollback", "ip", "--to", "ip@3").exit_code == 4  # already there
    history = adapters("history", "ip")
    assert history.exit_code == 0
    last_two = [line.split() for line in lines(history.stdout)[-2:]]
    assert [words[2:6] for words in last_two] == [
        ["current", "3", "2", "maria"],
        ["current", "2", "3", "maria"],
    ]
    assert " ".join(last_two[0][6:]) == "forgot general English"
    assert " ".join(last_two[1][6:]) == "rollback from ip@2"
    assert [line.split()[0] for line in lines(adapters("list", "ip").stdout)[2:-1]] == [
        "ip@1",
        "ip@2",
        "ip@3",
    ]


def test_rollback_without_a_parent_says_what_to_do(adapters, registry: Registry) -> None:
    add_version(registry, "ip")
    result = adapters("rollback", "ip")
    assert result.exit_code == 4
    assert result.stderr.strip() == "error: ip@1 has no parent to roll back to; use --to REF"


def test_promote_overrides_the_gate_by_hand(adapters, registry: Registry) -> None:
    add_version(registry, "ip")
    add_version(registry, "ip", parent="ip@1", promote=False)
    result = adapters("promote", "ip@2", "--reason", "gate too strict")
    assert result.stdout.strip() == "ip@current: ip@1 -> ip@2"
    assert json.loads(adapters("history", "ip", "--json").stdout)[-1]["reason"] == "gate too strict"


def test_history_of_an_unknown_adapter(adapters, registry: Registry) -> None:
    add_version(registry, "ip")
    result = adapters("history", "tax")
    assert result.exit_code == 3
    assert result.stderr.strip() == "error: no adapter named 'tax'; known adapters: ip"


def test_datasets_shows_which_versions_used_which_data_in_which_role(adapters, story: Registry) -> None:
    uses = json.loads(adapters("datasets", "--json").stdout)
    assert ("ip@4", "train", dataset("ip-4").digest) in {
        (u["ref"], u["role"], u["dataset"]["digest"]) for u in uses
    }
    held_out = [u["ref"] for u in uses if u["dataset"]["digest"] == dataset("held-out").digest]
    assert held_out == ["ip@1", "ip@2", "ip@3"]  # one dataset, registered once, used three times
    table = adapters("datasets", "ip")
    assert table.exit_code == 0
    assert all(len(line) <= 80 for line in table.stdout.splitlines())
    ip4 = row(table.stdout, dataset("ip-4").digest[7:19])
    assert ip4.split()[3:6] == ["/data/ip-4.jsonl", "ip@4", "train"]
    assert "style@1" not in table.stdout


def test_diff_puts_hyperparameters_data_and_scores_side_by_side(adapters, registry: Registry) -> None:
    add_version(registry, "ip", data=["a"], scores={"general": 3.0}, learning_rate=2e-4)
    add_version(registry, "ip", parent="ip@1", data=["b"], scores={"general": 3.25}, learning_rate=1e-3)
    result = adapters("diff", "ip@1", "ip")
    assert result.exit_code == 0, result.output
    assert lines(result.stdout)[0].split() == ["field", "ip@1", "ip@2"]
    assert row(result.stdout, "training.learning_rate").split() == [
        "training.learning_rate",
        "0.0002",
        "0.001",
    ]
    assert row(result.stdout, "eval.general").split()[-2:] == ["3", "3.25"]
    assert row(result.stdout, "data.train").split()[1:] == [
        dataset("a").digest[7:23],
        dataset("b").digest[7:23],
    ]
    assert "lora.r" not in result.stdout
    everything = json.loads(adapters("diff", "ip@1", "ip@2", "--all", "--json").stdout)
    assert everything["lora.r"] == {"ip@1": 8, "ip@2": 8}
    assert everything["data.train"] == {"ip@1": [dataset("a").digest], "ip@2": [dataset("b").digest]}
    same = adapters("diff", "ip@2", "ip@current")
    assert same.stdout.strip() == "ip@2 and ip@2 record the same settings, data and scores"

"""The Ledger without a model: reads, alias moves, typed errors and recipe keywords, on versions seeded
through the real registry (tests/support/seeding.py)."""

from pathlib import Path

import pytest
from support.seeding import seed_version

import loraledger
from loraledger import Conflict, InvalidInput, LedgerError, NotFound
from loraledger.ledger import Ledger


@pytest.fixture
def ledger(home: Path) -> Ledger:
    """Three versions of ``ip``: 1 -> 2 -> 3, with 3 current."""
    opened = loraledger.open(home)
    for number, parent in ((1, None), (2, "ip@1"), (3, "ip@2")):
        seed_version(opened.registry, "ip", weights=f"w{number}".encode(), parent=parent)
    return opened


def test_open_resolves_like_the_cli(home: Path, tmp_path: Path) -> None:
    opened = loraledger.open()  # ADAPTERS_HOME (the fixture sets it)
    assert opened.settings.home == home.resolve()
    assert opened.settings.db_url == f"sqlite:///{home.resolve() / 'registry.db'}"
    other = loraledger.open(tmp_path / "elsewhere", user="ana", store=str(tmp_path / "blobs"))
    assert other.settings.user == "ana"
    assert other.settings.store_url == str(tmp_path / "blobs")
    assert other.versions() == []


def test_reads_return_schema_objects(ledger: Ledger) -> None:
    versions = ledger.versions("ip")
    assert [v.ref for v in versions] == ["ip@1", "ip@2", "ip@3"]
    assert [v.parent for v in versions] == [None, "ip@1", "ip@2"]
    assert ledger.version("ip").ref == "ip@3"  # the current version
    assert ledger.version("ip@2").number == 2
    assert ledger.version("ip@latest").number == 3
    assert [s.ref for s in ledger.summaries()] == ["ip@1", "ip@2", "ip@3"]
    [adapter] = ledger.adapters()
    assert adapter.name == "ip"
    as_dict = versions[1].to_dict()
    assert as_dict["ref"] == "ip@2" and as_dict["parent"] == "ip@1"
    assert isinstance(as_dict["created_at"], str)  # JSON-ready


def test_lineage_is_a_tree_with_to_dict(ledger: Ledger) -> None:
    [root] = ledger.lineage("ip")
    assert root.version.ref == "ip@1"
    assert [c.version.ref for c in root.children] == ["ip@2"]
    tree = root.to_dict()
    assert tree["version"]["ref"] == "ip@1"
    assert tree["children"][0]["children"][0]["version"]["ref"] == "ip@3"


def test_datasets_and_diff(ledger: Ledger) -> None:
    uses = ledger.datasets("ip")
    assert sorted({use.role for use in uses}) == ["train"]
    assert len(uses) == 3
    diff = ledger.diff("ip@1", "ip")
    assert (diff.left, diff.right) == ("ip@1", "ip@3")
    assert diff.changes["parent"] == (None, "ip@2")
    left, right = diff.changes["artifact"]
    assert left != right
    assert diff.to_dict()["artifact"] == {"ip@1": left, "ip@3": right}


def test_promote_alias_rollback_and_history(ledger: Ledger) -> None:
    event = ledger.rollback("ip", reason="forgot general text")
    assert (event.from_version, event.to_version) == (3, 2)
    assert ledger.version("ip").number == 2
    assert ledger.version("ip@3").is_current is False  # nothing is deleted

    event = ledger.promote("ip@3", reason="fixed")
    assert (event.from_version, event.to_version) == (2, 3)

    event = ledger.rollback("ip", to="ip@1")
    assert event.to_version == 1

    tagged = ledger.alias("ip@2", "champion", reason="best so far")
    assert (tagged.alias, tagged.to_version) == ("champion", 2)
    assert ledger.version("ip@champion").number == 2
    removed = ledger.alias("ip", "champion", delete=True)
    assert removed.from_version == 2

    history = ledger.history("ip")
    moves = [(e.alias, e.from_version, e.to_version, e.reason) for e in history if e.alias == "current"]
    assert moves[-3:] == [
        ("current", 3, 2, "forgot general text"),
        ("current", 2, 3, "fixed"),
        ("current", 3, 1, "rollback from ip@3"),
    ]
    with pytest.raises(NotFound):
        ledger.version("ip@champion")


def test_threshold_and_suite(ledger: Ledger) -> None:
    assert ledger.suite("ip").threshold == pytest.approx(0.05)
    assert ledger.set_threshold("ip", 0.1) == pytest.approx(0.05)  # returns the one it replaced
    suite = ledger.suite("ip")
    assert suite.threshold == pytest.approx(0.1)
    assert list(suite) == [] and len(suite) == 0 and suite.setting is None
    with pytest.raises(InvalidInput):
        ledger.set_threshold("ip", -1)


@pytest.mark.parametrize(
    "call",
    [
        lambda ledger: ledger.version("nobody"),
        lambda ledger: ledger.version("ip@9"),
        lambda ledger: ledger.version("ip@staging"),
        lambda ledger: ledger.rollback("nobody"),
        lambda ledger: ledger.promote("ip@7"),
        lambda ledger: ledger.diff("ip@1", "ip@42"),
        lambda ledger: ledger.forgetting("ip", setting="fp64 w1/s1"),
    ],
)
def test_unknown_refs_raise_not_found_never_system_exit(ledger: Ledger, call) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(NotFound) as caught:
        call(ledger)
    assert caught.value.exit_code == 3
    assert isinstance(caught.value, LedgerError)


def test_conflicts_and_bad_input_are_typed(ledger: Ledger) -> None:
    ledger.rollback("ip", to="ip@1")
    with pytest.raises(Conflict):
        ledger.rollback("ip")  # ip@1 has no parent
    with pytest.raises(InvalidInput):
        ledger.version("not a ref!")


def test_recipe_keywords_land_in_their_sections() -> None:
    from loraledger.recipes import recipe_with
    from loraledger.schemas.specs import Recipe, TrainSpec

    recipe, explicit = recipe_with(None, {"r": 8, "epochs": 2, "replay": 0.1, "learning_rate": 1e-4})
    assert recipe.lora.r == 8
    assert (recipe.training.epochs, recipe.training.replay, recipe.training.learning_rate) == (2, 0.1, 1e-4)
    assert explicit == {"r"}  # LoRA fields set on purpose (a continued adapter checks them)

    base = Recipe(training=TrainSpec(epochs=3, max_length=128))
    recipe, explicit = recipe_with(base, {"max_length": 256})
    assert (recipe.training.epochs, recipe.training.max_length) == (3, 256)  # keywords win
    assert explicit == set()


def test_unknown_or_invalid_recipe_keyword_is_invalid_input() -> None:
    from loraledger.recipes import recipe_with

    with pytest.raises(InvalidInput, match="unknown training setting 'epoch'"):
        recipe_with(None, {"epoch": 2})
    with pytest.raises(InvalidInput, match=r"training\.epochs"):
        recipe_with(None, {"epochs": -1})


def test_train_refuses_an_unknown_keyword_before_any_work(ledger: Ledger, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="unknown training setting 'rank'"):
        ledger.train("ip", tmp_path / "missing.jsonl", rank=8)
    assert [v.number for v in ledger.versions("ip")] == [1, 2, 3]

"""The registry's rules (numbering, refs, immutability, datasets, aliases, rollback, lineage) on SQLite
and PostgreSQL: the ``registry`` fixture runs each test on both."""

import pytest
from sqlalchemy import text
from support.registry_factory import BASE, OTHER_BASE, add_version, chain, dataset

from loraledger.registry import Registry
from loraledger.schemas.errors import Conflict, InvalidInput, NotFound


def test_numbers_increase_per_adapter(registry: Registry) -> None:
    refs = [
        add_version(registry, "ip").ref,
        add_version(registry, "ip", parent="ip@1").ref,
        add_version(registry, "tax").ref,
        add_version(registry, "ip", parent="ip@2").ref,
    ]
    assert refs == ["ip@1", "ip@2", "tax@1", "ip@3"]
    assert [v.ref for v in registry.versions()] == ["ip@1", "ip@2", "ip@3", "tax@1"]
    assert [(a.name, a.versions, a.current) for a in registry.adapters()] == [("ip", 3, 3), ("tax", 1, 1)]


def test_a_version_keeps_everything_it_was_registered_with(registry: Registry) -> None:
    add_version(registry, "ip", data=["rulings"], learning_rate=1e-3, rank=16, seed=7)
    version = add_version(
        registry,
        "ip",
        parent="ip@1",
        data=["rulings-2"],
        eval_data=["held-out"],
        scores={"held-out": 1.25, "general": 3.5},
        final_loss=1.75,
        note="november batch",
    )
    shown = registry.resolve("ip@2")
    assert shown == version
    assert (shown.kind, shown.parent, shown.seed, shown.final_loss, shown.note) == (
        "train",
        "ip@1",
        0,
        1.75,
        "november batch",
    )
    assert shown.base == BASE
    assert shown.base.fingerprint == f"{BASE.config_digest}/{BASE.weights_digest}"
    assert shown.lora["r"] == 8 and shown.training["learning_rate"] == 2e-4
    assert shown.libraries == {"torch": "2.13.0", "peft": "0.21.2"}
    assert shown.train_tokens == 30
    assert (shown.created_by, shown.host) == ("tester", "testhost")
    assert shown.artifact_digest.startswith("sha256:")
    assert [(use.role, use.dataset.digest) for use in shown.datasets] == [
        ("train", dataset("rulings-2").digest),
        ("eval", dataset("held-out").digest),
    ]
    assert {(e.label, e.metric, e.value) for e in shown.evals} == {
        ("held-out eval", "nll", 1.25),
        ("general eval", "nll", 3.5),
    }
    assert registry.resolve("ip@1").lora["r"] == 16


def test_refs_name_versions_and_aliases(registry: Registry) -> None:
    chain(registry, "ip", 3)
    registry.set_alias("ip@2", "champion")
    assert registry.resolve("ip").ref == "ip@3"
    assert registry.resolve("ip@current").ref == "ip@3"
    assert registry.resolve("ip@2").ref == "ip@2"
    assert registry.resolve("ip@v2").ref == "ip@2"
    assert registry.resolve("ip@latest").ref == "ip@3"
    assert registry.resolve("ip@champion").ref == "ip@2"
    registry.rollback("ip")
    assert registry.resolve("ip").ref == "ip@2"
    assert registry.resolve("ip@latest").ref == "ip@3"


def test_without_a_current_alias_the_name_means_the_latest_version(registry: Registry) -> None:
    add_version(registry, "ip", promote=False)
    add_version(registry, "ip", parent="ip@1", promote=False)
    assert registry.store.aliases("ip") == {}
    assert registry.resolve("ip").ref == "ip@2"


def test_a_bad_ref_says_what_exists(registry: Registry) -> None:
    with pytest.raises(NotFound, match=r"the registry is empty"):
        registry.resolve("ip")
    chain(registry, "ip", 3)
    add_version(registry, "tax")
    registry.set_alias("ip@1", "champion")
    with pytest.raises(NotFound) as missing_version:
        registry.resolve("ip@9")
    assert str(missing_version.value) == (
        "ip@9 does not exist: ip has versions 1..3 and aliases champion (ip@1), current (ip@3), latest (ip@3)"
    )
    with pytest.raises(NotFound) as missing_alias:
        registry.resolve("ip@staging")
    assert str(missing_alias.value).startswith("ip@staging does not exist: ip has no alias 'staging'; ")
    assert "versions 1..3" in str(missing_alias.value)
    with pytest.raises(NotFound) as missing_adapter:
        registry.resolve("ipp@2")
    assert str(missing_adapter.value) == "no adapter named 'ipp' (did you mean ip?); known adapters: ip, tax"
    with pytest.raises(InvalidInput, match="nothing after '@'"):
        registry.resolve("ip@")
    with pytest.raises(InvalidInput, match="versions start at 1"):
        registry.resolve("ip@0")


def test_versions_are_immutable_in_the_database(registry: Registry) -> None:
    add_version(registry, "ip", seed=1)
    engine = registry.store.engine  # type: ignore[attr-defined]
    with pytest.raises(Exception, match="versions are immutable once registered"), engine.begin() as c:
        c.execute(text("UPDATE version SET seed = 2"))
    assert registry.resolve("ip@1").seed == 1
    with pytest.raises(Exception, match="ck_version_kind"), engine.begin() as c:
        c.execute(
            text(
                "INSERT INTO version (adapter_id, number, kind, base_model_id, lora, training, libraries,"
                " artifact_digest, created_at, created_by, host) SELECT adapter_id, 2, 'finetune',"
                " base_model_id, lora, training, libraries, artifact_digest, created_at, created_by, host"
                " FROM version"
            )
        )


def test_a_dataset_is_registered_once_and_linked_with_roles(registry: Registry) -> None:
    add_version(registry, "ip", data=["shared"], eval_data=["held-out"])
    add_version(registry, "ip", parent="ip@1", data=["fresh"], eval_data=["held-out"])
    add_version(registry, "tax", data=["shared"])
    digests = [d.digest for d in registry.datasets()]
    assert sorted(digests) == sorted({dataset(t).digest for t in ("shared", "held-out", "fresh")})
    uses = {(u.ref, u.role, u.dataset.digest) for u in registry.dataset_uses()}
    assert uses == {
        ("ip@1", "train", dataset("shared").digest),
        ("ip@1", "eval", dataset("held-out").digest),
        ("ip@2", "train", dataset("fresh").digest),
        ("ip@2", "eval", dataset("held-out").digest),
        ("tax@1", "train", dataset("shared").digest),
    }
    assert {u.ref for u in registry.dataset_uses("tax")} == {"tax@1"}


def test_aliases_move_and_every_move_is_recorded(registry: Registry) -> None:
    chain(registry, "ip", 3)
    registry.set_alias("ip@1", "champion", reason="best on legal eval")
    registry.set_alias("ip@2", "champion")
    registry.remove_alias("ip", "champion", reason="retired")
    assert "champion" not in registry.store.aliases("ip")
    events = [(e.alias, e.from_version, e.to_version, e.reason, e.created_by) for e in registry.history("ip")]
    assert events == [
        ("current", None, 1, "registered", "tester"),
        ("current", 1, 2, "registered", "tester"),
        ("current", 2, 3, "registered", "tester"),
        ("champion", None, 1, "best on legal eval", "tester"),
        ("champion", 1, 2, None, "tester"),
        ("champion", 2, None, "retired", "tester"),
    ]
    times = [e.created_at for e in registry.history("ip")]
    assert times == sorted(times) and all(t.tzinfo is not None for t in times)


@pytest.mark.parametrize(
    ("alias", "message"),
    [("current", "adapters promote"), ("latest", "reserved"), ("base", "reserved"), ("v2", "version number")],
)
def test_reserved_aliases_cannot_be_set(registry: Registry, alias: str, message: str) -> None:
    add_version(registry, "ip")
    with pytest.raises(InvalidInput, match=message):
        registry.set_alias("ip@1", alias)
    with pytest.raises(InvalidInput, match=message):
        registry.remove_alias("ip", alias)


def test_rollback_moves_current_to_the_parent_and_keeps_the_abandoned_version(registry: Registry) -> None:
    chain(registry, "ip", 3)
    event = registry.rollback("ip", reason="forgot general English")
    assert (event.from_version, event.to_version, event.reason) == (3, 2, "forgot general English")
    assert registry.resolve("ip").ref == "ip@2"
    assert [v.ref for v in registry.versions("ip")] == ["ip@1", "ip@2", "ip@3"]
    assert registry.rollback("ip").reason == "rollback from ip@2"
    assert registry.resolve("ip").ref == "ip@1"
    with pytest.raises(Conflict, match="ip@1 has no parent to roll back to; use --to REF"):
        registry.rollback("ip")
    registry.rollback("ip", to="ip@3")
    assert registry.resolve("ip").ref == "ip@3"
    with pytest.raises(Conflict, match="already ip@3"):
        registry.rollback("ip", to="ip@v3")


def test_rollback_stays_within_the_adapter(registry: Registry) -> None:
    chain(registry, "ip", 2)
    add_version(registry, "tax")
    with pytest.raises(InvalidInput, match="belongs to another adapter"):
        registry.rollback("ip", to="tax@1")
    with pytest.raises(NotFound, match=r"ip has versions 1\.\.2"):
        registry.rollback("ip", to="ip@7")


def test_a_stale_alias_move_is_refused(registry: Registry) -> None:
    """Lost-update guard: a move based on where current *was* fails once someone else moved it."""
    chain(registry, "ip", 3)
    seen = registry.store.aliases("ip")["current"]
    registry.rollback("ip")  # another user, meanwhile: current 3 -> 2
    with pytest.raises(
        Conflict, match=r"ip@current moved to version 2 while this command ran \(expected 3\)"
    ):
        registry.store.move_alias("ip", "current", 1, reason="stale", who="late", expect=seen)
    assert registry.resolve("ip").ref == "ip@2"
    assert [e.reason for e in registry.history("ip")][-1] == "rollback from ip@3"


def test_a_version_trained_across_a_rollback_does_not_undo_it(registry: Registry) -> None:
    """Training started when current was 3; someone rolled back meanwhile: the new version is
    registered, but current stays where the rollback put it."""
    chain(registry, "ip", 3)
    registry.rollback("ip")
    late = add_version(registry, "ip", parent="ip@3", only_if_current=(3,))
    assert (late.ref, late.is_current) == ("ip@4", False)
    assert registry.resolve("ip").ref == "ip@2"
    on_time = add_version(registry, "ip", parent="ip@2", only_if_current=(2,))
    assert on_time.is_current
    first = add_version(registry, "new", only_if_current=(None,))
    assert first.is_current


def test_promote_makes_a_held_back_version_current(registry: Registry) -> None:
    add_version(registry, "ip")
    add_version(registry, "ip", parent="ip@1", promote=False)
    assert registry.resolve("ip").ref == "ip@1"
    event = registry.promote("ip@2", reason="gate too strict")
    assert (event.from_version, event.to_version, event.reason) == (1, 2, "gate too strict")


def test_a_continuation_must_keep_its_parents_base(registry: Registry) -> None:
    add_version(registry, "ip")
    with pytest.raises(Conflict, match="differs from the base of its parent ip@1"):
        add_version(registry, "ip", parent="ip@1", base=OTHER_BASE)
    assert registry.store.numbers("ip") == [1]


def test_lineage_is_a_tree_with_branches_and_inputs(registry: Registry) -> None:
    chain(registry, "ip", 2)
    registry.rollback("ip")
    add_version(registry, "ip", parent="ip@1", data=["ip-3"])  # the branch after the rollback
    add_version(registry, "style")
    add_version(registry, "ip", kind="stack", inputs=[("ip@3", 1.0), ("style@1", 0.5)], data=[])
    roots = registry.lineage("ip")
    assert [root.version.ref for root in roots] == ["ip@1", "ip@4"]
    assert [child.version.ref for child in roots[0].children] == ["ip@2", "ip@3"]
    stack = roots[1]
    assert [(node.version.ref, node.version.kind) for node in stack.inputs] == [
        ("ip@3", "train"),
        ("style@1", "train"),
    ]
    assert [(i.ref, i.weight) for i in stack.version.inputs] == [("ip@3", 1.0), ("style@1", 0.5)]


def test_training_again_on_data_in_the_lineage_is_detected(registry: Registry) -> None:
    chain(registry, "ip", 3)  # data ip-1, ip-2, ip-3
    registry.rollback("ip")
    add_version(registry, "ip", parent="ip@2", data=["ip-4"])
    current = registry.resolve("ip")
    seen = registry.already_trained(current, [dataset(t).digest for t in ("ip-1", "ip-3", "ip-4", "new")])
    # ip-3 was trained on by the abandoned ip@3, which is not in ip@4's lineage.
    assert seen == {dataset("ip-1").digest: "ip@1", dataset("ip-4").digest: "ip@4"}
    assert [use.ref for use in registry.lineage_datasets(current)] == ["ip@4", "ip@2", "ip@1"]
    assert [v.ref for v in registry.ancestors(current)] == ["ip@2", "ip@1"]


def test_diff_shows_hyperparameters_data_and_scores(registry: Registry) -> None:
    add_version(registry, "ip", data=["a"], scores={"general": 3.0}, learning_rate=2e-4)
    add_version(registry, "ip", parent="ip@1", data=["b"], scores={"general": 3.25}, learning_rate=1e-3)
    add_version(
        registry, "ip", parent="ip@1", data=["c"], scores={"general": 3.5}, setting="nf4/fp32 w512/s256"
    )
    differences = registry.diff("ip@1", "ip@2")
    assert differences["training.learning_rate"] == (2e-4, 1e-3)
    assert differences["eval.general eval.nll [fp32 w512/s256]"] == (3.0, 3.25)
    # a score of another setting is another field: never set against one it cannot be compared with
    across = registry.diff("ip@1", "ip@3")
    assert across["eval.general eval.nll [fp32 w512/s256]"] == (3.0, None)
    assert across["eval.general eval.nll [nf4/fp32 w512/s256]"] == (None, 3.5)
    assert differences["parent"] == (None, "ip@1")
    assert differences["data.train"] == ([dataset("a").digest], [dataset("b").digest])
    assert "lora.r" not in differences and "seed" not in differences

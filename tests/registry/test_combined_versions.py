"""Rules for versions combined from others (stacks, merges) and for versions that continue nothing
(imports): one base per adapter, inputs on the same base as the result."""

import pytest
from support.registry_factory import BASE, OTHER_BASE, add_version

from loraledger.registry import Registry
from loraledger.schemas.errors import Conflict


def test_inputs_must_share_the_base_of_the_combined_version(registry: Registry) -> None:
    add_version(registry, "legal")
    add_version(registry, "llama", base=OTHER_BASE)
    with pytest.raises(
        Conflict,
        match=r"both: input llama@1 was trained on meta-llama/Llama-3\.1-8B \(0e9e39f249a1\), "
        r"not on builtin:tiny \(dddddddddddd\)",
    ):
        add_version(registry, "both", kind="stack", inputs=[("legal@1", 1.0), ("llama@1", 1.0)], data=[])
    assert not registry.exists("both") or not registry.store.versions("both")

    stacked = add_version(
        registry, "both", kind="stack", inputs=[("legal@1", 1.0), ("legal@1", 0.5)], data=[]
    )
    assert [(i.ref, i.weight) for i in stacked.inputs] == [("legal@1", 1.0), ("legal@1", 0.5)]


def test_check_base_refuses_a_second_base_for_one_name(registry: Registry) -> None:
    registry.check_base("new", OTHER_BASE)  # no versions yet: any base
    add_version(registry, "legal")
    registry.check_base("legal", BASE)
    with pytest.raises(Conflict, match=r"legal@1 was trained on builtin:tiny .*use another adapter name"):
        registry.check_base("legal", OTHER_BASE)

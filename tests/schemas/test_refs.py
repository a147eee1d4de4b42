import pytest
from hypothesis import given
from hypothesis import strategies as st

from loraledger.schemas import InvalidInput, Ref

names = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{0,30}", fullmatch=True)


@pytest.mark.parametrize(
    ("text", "version", "alias"),
    [
        ("ip", None, None),
        ("ip@3", 3, None),
        ("ip@v3", 3, None),
        ("ip@current", None, "current"),
        ("ip@champ", None, "champ"),
    ],
)
def test_parse(text: str, version: int | None, alias: str | None) -> None:
    ref = Ref.parse(text)
    assert (ref.name, ref.version, ref.alias) == ("ip", version, alias)


@pytest.mark.parametrize(
    "text", ["", "@3", "ip@", "ip@0", "../x", "a/b", "ip@a/b", "ip@..", ".hidden", "x" * 101, "a..b"]
)
def test_rejects(text: str) -> None:
    with pytest.raises(InvalidInput):
        Ref.parse(text)


@given(names, st.integers(min_value=1, max_value=10**6))
def test_version_round_trip(name: str, number: int) -> None:
    assert Ref.parse(str(Ref.parse(f"{name}@v{number}"))) == Ref(name=name, version=number)


@given(names, names.filter(lambda s: not s.isdigit() and not (s[0] == "v" and s[1:].isdigit())))
def test_alias_round_trip(name: str, alias: str) -> None:
    assert Ref.parse(str(Ref(name=name, alias=alias))) == Ref(name=name, alias=alias)

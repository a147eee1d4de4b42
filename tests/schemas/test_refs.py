import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loraledger.schemas import InvalidInput, Ref
from loraledger.schemas.names import check_alias, check_name

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


# ---- properties: whatever the text, parsing gives a path-safe ref or a one-line InvalidInput --------

alias_like = names.filter(lambda s: not s.isdigit() and not (s[0] in "vV" and s[1:].isdigit()))


@given(st.text(max_size=120))
def test_any_text_parses_or_is_refused_cleanly(text: str) -> None:
    try:
        ref = Ref.parse(text)
    except InvalidInput as exc:
        assert "\n" not in str(exc)  # one line, whatever the input held (it is shown with repr)
        return
    for part in [ref.name, *([ref.alias] if ref.alias else [])]:
        assert part == check_name(part)
        assert "/" not in part and "\\" not in part and ".." not in part and not part.startswith(".")
        assert len(part) <= 100


@given(st.text(alphabet=st.sampled_from("ab./\\:@ \t0v"), max_size=12))
def test_names_never_leave_their_folder(text: str) -> None:
    """Whatever a name is, once accepted it is one plain folder name inside any parent folder."""
    try:
        name = Ref.parse(text).name
    except InvalidInput:
        return
    parent = Path("/registry/runs")
    assert (parent / name).parent == parent
    assert os.path.normpath(parent / name) == str(parent / name)


@given(
    names,
    st.integers(min_value=1, max_value=10**9),
    st.sampled_from(["", "v"]),
    st.sampled_from(["", " ", "\t"]),
)
def test_version_selectors(name: str, number: int, prefix: str, space: str) -> None:
    ref = Ref.parse(f"{space}{name}@{prefix}{number}{space}")
    assert (ref.name, ref.version, ref.alias) == (name, number, None)
    assert str(ref) == f"{name}@{number}"


@given(names, alias_like)
def test_alias_selectors(name: str, alias: str) -> None:
    ref = Ref.parse(f"{name}@{alias}")
    assert (ref.name, ref.version, ref.alias) == (name, None, alias)
    assert ref.selector == alias


@given(names)
def test_a_bare_name_means_current(name: str) -> None:
    ref = Ref.parse(name)
    assert (ref.version, ref.alias, ref.selector, str(ref)) == (None, None, "current", name)


@given(names, st.text(alphabet="/\\", min_size=1, max_size=3), names)
def test_separators_are_refused_in_names_and_aliases(left: str, separator: str, right: str) -> None:
    with pytest.raises(InvalidInput):
        Ref.parse(f"{left}{separator}{right}")
    with pytest.raises(InvalidInput):
        Ref.parse(f"{left}@{right}{separator}x")
    with pytest.raises(InvalidInput):
        check_alias(f"{left}{separator}{right}")

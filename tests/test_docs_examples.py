"""The Python examples in the docs and the README run, as written, on ``builtin:tiny``.

Sybil reads every ```` ```python ```` block of a page, in order, into one namespace (a page is one
notebook); a block preceded by ``<!-- skip: next -->`` is for reading only (it needs a GPU, the Hub or
a file the reader has). Each page runs in a fresh registry home, from a folder where
``trainer/samples`` is the shipped sample data, as it is in a checkout. Pages whose examples train,
score or merge are marked slow.
"""

from pathlib import Path
from typing import Any

import pytest
from sybil import Sybil
from sybil.parsers.markdown import PythonCodeBlockParser, SkipParser

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
SYBIL = Sybil(parsers=[PythonCodeBlockParser(), SkipParser()])
# Calls that load a model: minutes on a shared two-core machine, so `make test-fast` skips them.
MODEL_CALLS = (".train(", ".evaluate(", ".merge(", ".stack(", ".push(", ".export(", ".load(")


def runnable(page: Path) -> str:
    return "\n".join(example.parsed for example in SYBIL.parse(page) if isinstance(example.parsed, str))


def cases() -> list[Any]:  # pytest.param's ParameterSet is not a public type
    found: list[Any] = []
    for page in PAGES:
        code = runnable(page)
        if not code.strip():
            continue
        marks = [pytest.mark.slow] if any(call in code for call in MODEL_CALLS) else []
        found.append(pytest.param(page, marks=marks, id=page.relative_to(REPO).as_posix()))
    return found


@pytest.mark.parametrize("page", cases())
def test_page_examples_run(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "trainer").symlink_to(REPO / "trainer", target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    for example in SYBIL.parse(page):
        example.evaluate()


def test_some_pages_have_runnable_examples() -> None:
    # Guards the runner itself: a parser that silently found nothing would pass every page.
    ids = [case.id for case in cases()]
    assert "README.md" in ids
    assert "docs/api.md" in ids

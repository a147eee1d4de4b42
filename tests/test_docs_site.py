"""The documentation site builds with ``mkdocs build --strict`` (what ``make docs`` runs): a broken link
or anchor, a page missing from the nav, a docstring mkdocstrings cannot render or a click command
mkdocs-click cannot document fails here, in CI, not on the published site."""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_site_builds_strictly(tmp_path: Path) -> None:
    site = tmp_path / "site"
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    # The generated references are there, not just the hand-written pages.
    api = (site / "api" / "index.html").read_text()
    assert 'id="loraledger.ledger.Ledger.train"' in api
    assert 'id="loraledger.errors.NotFound"' in api
    cli = (site / "cli" / "index.html").read_text()
    assert 'id="adapters-train"' in cli
    assert "--replay" in cli
    assert "Sentinel" not in cli  # click's unset default, printed as text by a table layout


def test_every_page_is_in_the_nav() -> None:
    config = (REPO / "mkdocs.yml").read_text()
    pages = sorted(page.name for page in (REPO / "docs").glob("*.md"))
    assert [page for page in pages if f" {page}" not in config] == []

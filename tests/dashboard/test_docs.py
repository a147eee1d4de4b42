"""docs/dashboard.md documents `adapters ui` and every option of it, and shows every page it names
with a screenshot that exists (taken by test_browser.py)."""

import re
from pathlib import Path

from loraledger.cli.commands.ui import ui

DOCS = Path(__file__).resolve().parents[2] / "docs"
PAGE = DOCS / "dashboard.md"


def test_every_option_is_documented() -> None:
    text = PAGE.read_text()
    assert "adapters ui" in text
    for parameter in ui.params:
        for flag in parameter.opts:
            assert flag in text, flag


def test_every_screenshot_exists() -> None:
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", PAGE.read_text())
    assert len(images) == 4
    for image in images:
        assert (DOCS / image).is_file(), image

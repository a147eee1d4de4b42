"""The docs' Training page (docs/training.md) documents every flag of `adapters train` (the recipe flags'
table is generated from the spec fields, so it cannot drift)."""

import re
from pathlib import Path

from loraledger.cli.commands.training import flags_markdown, train

PAGE = Path(__file__).resolve().parents[2] / "docs" / "training.md"


def training_section() -> str:
    return PAGE.read_text()


def test_flags_table_is_the_generated_one() -> None:
    section = training_section()
    table = re.search(r"<!-- train-flags:start -->\n(.*?)<!-- train-flags:end -->", section, re.S)
    assert table is not None
    assert table.group(1) == flags_markdown(), "replace the table with flags_markdown()'s output"


def test_every_train_option_is_documented() -> None:
    # The Training page, or another page of the docs site (e.g. docs/retention.md for --max-forgetting).
    pages = sorted(PAGE.parent.glob("*.md"))
    section = training_section() + "".join(page.read_text() for page in pages)
    missing = [
        option.opts[0]
        for option in train.params
        if option.opts[0].startswith("--")
        and option.opts[0] not in ("--help", "--json", "--note")
        and f"`{option.opts[0]}" not in section
    ]
    assert missing == []

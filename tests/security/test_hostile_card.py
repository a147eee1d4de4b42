"""Finding 6 of issue 17: a data file name (or eval label, or training value) cannot add lines, table
cells or HTML to a pushed model card."""

from pathlib import Path

from huggingface_hub import ModelCard
from support.registry_factory import OTHER_BASE, add_version

from loraledger.modelcard import build_card
from loraledger.registry import Registry

EVIL = "evil\n## Injected heading\n| forged | row |<img src=x onerror=alert(1)>`code`[link](javascript:x)"


def test_a_hostile_file_name_stays_inside_its_cell(tmp_path: Path) -> None:
    reg = Registry.open(f"sqlite:///{tmp_path / 'r.db'}", str(tmp_path / "store"), user="alice", host="box")
    add_version(reg, "ip", base=OTHER_BASE, data=[EVIL], eval_data=[EVIL], scores={EVIL: 2.5})
    card = ModelCard(build_card(reg, reg.resolve("ip@1"), repo_id="acme/ip", relation="adapter"))
    body = card.text
    assert not any(line.startswith("## Injected") for line in body.splitlines())
    assert "<img" not in body and "](javascript:" not in body.replace("\\](javascript:", "")
    data_rows = [line for line in body.splitlines() if line.startswith("| ip@1 | train | `sha256")]
    assert len(data_rows) == 1
    # The row still has exactly its five cells: every "|" of the name is escaped.
    assert data_rows[0].replace("\\|", "").count("|") == 6
    assert "&lt;img src=x" in data_rows[0]
    # The metadata keeps the exact name (YAML quotes it); only the Markdown is escaped.
    assert {use["file"] for use in card.data.loraledger["datasets"]} == {f"{EVIL}.jsonl"}


def test_markdown_cell() -> None:
    from loraledger.modelcard import markdown_cell

    assert markdown_cell("plain name.jsonl") == "plain name.jsonl"
    assert markdown_cell("a|b\nc\r\td") == "a\\|b c d"
    assert markdown_cell("<b>&`x`[y]") == "&lt;b&gt;&amp;\\`x\\`\\[y\\]"
    assert markdown_cell("back\\slash") == "back\\\\slash"

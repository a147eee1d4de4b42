"""The docs' "Storage and teams" page (docs/storage.md) documents every option of `adapters verify` and
`adapters gc`, and every point and action of the ADAPTERS_FAULT test hook."""

from pathlib import Path

from support import faults

from loraledger.cli.commands.maintenance import gc, verify

PAGE = Path(__file__).resolve().parents[2] / "docs" / "storage.md"


def storage_section() -> str:
    return PAGE.read_text()


def test_verify_and_gc_options_are_documented() -> None:
    section = storage_section()
    for command in (verify, gc):
        options = [o.opts[0] for o in command.params if o.opts[0].startswith("--") and o.opts[0] != "--help"]
        assert [o for o in options if o not in section] == [], command.name


def test_fault_points_and_actions_are_documented() -> None:
    section = storage_section()
    assert [name for name in (*faults.POINTS, *faults.ACTIONS) if f"`{name}`" not in section] == []

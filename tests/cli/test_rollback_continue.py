"""After a rollback, the next `adapters train` continues from the version current points to, the
abandoned version stays listed, and training again on data the lineage has seen warns (tiny training)."""

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
TINY = ["--epochs", "0.2", "--max-length", "128", "--batch-tokens", "1024", "--no-eval", "-q"]


def sample(samples: Path, folder: Path, stem: str, rows: int = 4) -> Path:
    lines = (samples / "legal" / f"{stem}.jsonl").read_text().splitlines()[:rows]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{stem}.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_training_after_a_rollback_continues_from_current(
    adapters, samples: Path, tmp_path: Path, tiny_base: Path
) -> None:
    first = sample(samples, tmp_path / "october", "update-1")
    second = sample(samples, tmp_path / "november", "update-2")
    assert adapters("train", "ip", "--base", "builtin:tiny", "--data", str(first), *TINY).exit_code == 0
    assert adapters("train", "ip", "--data", str(second), *TINY).exit_code == 0
    assert adapters("rollback", "ip", "--reason", "forgot general English").exit_code == 0

    # The same records as ip@1's data, from another file with its keys reordered and CRLF endings.
    again = tmp_path / "resent" / "rulings-copy.jsonl"
    again.parent.mkdir()
    rows = [json.loads(line) for line in first.read_text().splitlines()]
    again.write_bytes(b"".join(json.dumps(dict(reversed(r.items()))).encode() + b"\r\n" for r in rows))
    third = adapters("train", "ip", "--data", str(again), *TINY)
    assert third.exit_code == 0, third.output
    assert third.stdout.strip().splitlines()[-1] == "ip@3"
    warning = "".join(third.stderr.split())  # rich wraps the long path at 80 columns
    assert f"warning:{again}(sha256:" in warning
    assert "wasalreadytrainedonbyip@1,inthelineageofip@1thatthisupdatecontinues" in warning

    versions = json.loads(adapters("list", "ip", "--json").stdout)
    assert [(v["ref"], v["parent"], v["current"]) for v in versions] == [
        ("ip@1", None, False),
        ("ip@2", "ip@1", False),  # abandoned, still listed
        ("ip@3", "ip@1", True),
    ]
    assert versions[2]["train_digest"] == versions[0]["train_digest"]
    reasons = [e["reason"] for e in json.loads(adapters("history", "ip", "--json").stdout)]
    assert reasons == ["trained", "trained", "forgot general English", "trained"]

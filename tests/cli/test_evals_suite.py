"""Eval suites and the gate threshold through the CLI, and the one-line errors of eval/evals/report.
No model is loaded here."""

import json
import subprocess
import sys
from pathlib import Path


def general(samples: Path, tmp_path: Path, rows: int = 5, name: str = "general.jsonl") -> Path:
    lines = (samples / "general" / "retention-eval.jsonl").read_text().splitlines()[:rows]
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def test_suite_add_list_and_threshold_before_the_first_version(adapters, samples, tmp_path) -> None:  # type: ignore[no-untyped-def]
    added = adapters("suite", "add", "ip", str(general(samples, tmp_path)), "--label", "general text")
    assert added.exit_code == 0, added.output
    assert "general text" in added.stdout

    listed = json.loads(adapters("suite", "list", "ip", "--json").stdout)
    assert listed["threshold"] == 0.05  # the default gate
    [entry] = listed["sets"]
    assert (entry["label"], entry["role"], entry["rows"], entry["learned_by"]) == (
        "general text",
        "retention",
        5,
        None,
    )
    assert entry["digest"].startswith("sha256:")

    assert adapters("suite", "threshold", "ip", "0.1").exit_code == 0
    assert json.loads(adapters("suite", "list", "ip", "--json").stdout)["threshold"] == 0.1
    table = adapters("suite", "list", "ip")
    assert "general text" in table.stdout and "10.0%" in table.stdout


def test_adding_the_same_records_again_is_a_no_op_and_labels_stay_unique(adapters, samples, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = general(samples, tmp_path)
    assert adapters("suite", "add", "ip", str(path)).exit_code == 0
    assert adapters("suite", "add", "ip", str(path)).exit_code == 0
    sets = json.loads(adapters("suite", "list", "ip", "--json").stdout)["sets"]
    assert [s["label"] for s in sets] == ["general"]  # the file's stem

    relabel = adapters("suite", "add", "ip", str(path), "--label", "other")
    assert relabel.exit_code == 4 and "already in ip's suite" in relabel.stderr

    other = general(samples, tmp_path, rows=3, name="other.jsonl")
    clash = adapters("suite", "add", "ip", str(other), "--label", "general")
    assert clash.exit_code == 4 and "--label" in clash.stderr
    assert len(clash.stderr.strip().splitlines()) == 1


def test_bad_threshold_and_unknown_adapter_are_one_line_errors(adapters, samples, tmp_path) -> None:  # type: ignore[no-untyped-def]
    assert adapters("suite", "add", "ip", str(general(samples, tmp_path))).exit_code == 0
    negative = adapters("suite", "threshold", "ip", "--", "-0.1")
    assert negative.exit_code != 0 and len(negative.stderr.strip().splitlines()) == 1
    unknown = adapters("suite", "threshold", "nope", "0.1")
    assert unknown.exit_code == 3 and "no adapter named 'nope'" in unknown.stderr
    assert adapters("evals", "nope").exit_code == 3


def test_report_refuses_other_formats_and_empty_registries(adapters, tmp_path) -> None:  # type: ignore[no-untyped-def]
    wrong = adapters("report", "ip", "--out", str(tmp_path / "report.pdf"))
    assert wrong.exit_code == 2 and ".html or .png" in wrong.stderr
    empty = adapters("report", "ip", "--out", str(tmp_path / "report.html"))
    assert empty.exit_code == 3 and not (tmp_path / "report.html").exists()


def test_lm_eval_missing_is_a_one_line_error(adapters) -> None:  # type: ignore[no-untyped-def]
    result = adapters("eval", "ip@1", "--lm-eval", "hellaswag")
    assert result.exit_code == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: lm-evaluation-harness is not installed: pip install 'loraledger[lm-eval]'")


def test_reading_scores_imports_no_torch(samples, tmp_path, home) -> None:  # type: ignore[no-untyped-def]
    """`evals` and `suite list` read the registry only: they must not pay for torch."""
    probe = (
        "import sys\nfrom loraledger.cli.main import main\n"
        "for args in (['suite', 'add', 'ip', sys.argv[1]], ['suite', 'list', 'ip'], ['evals', 'ip']):\n"
        "    try:\n        main(args)\n    except SystemExit:\n        pass\n"
        "print('HEAVY=' + ','.join(m for m in ('torch', 'transformers', 'peft') if m in sys.modules))"
    )
    finished = subprocess.run(
        [sys.executable, "-c", probe, str(general(samples, tmp_path))],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "ip suite: general" in finished.stdout
    assert finished.stdout.strip().splitlines()[-1] == "HEAVY="

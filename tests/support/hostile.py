"""Checks shared by tests/security and tests/fuzz: the promise every hostile input must keep."""

from typing import Any

# The exit codes the manual documents: 1 unavailable, 2 invalid input, 3 not found, 4 conflict,
# 5 corrupt (click's own usage errors are 2).
DOCUMENTED_EXIT_CODES = {1, 2, 3, 4, 5}


def train_args(*args: str) -> tuple[str, ...]:
    return ("train", *args, "--max-length", "64", "--batch-tokens", "256", "--no-eval", "-q")


def control_free(text: str) -> bool:
    """No control character but line ends (what reached the terminal)."""
    return not any((ord(c) < 32 and c != "\n") or 0x7F <= ord(c) < 0xA0 for c in text)


def assert_refusal(result: Any, *, allowed_success: bool = True) -> None:
    """Success, or one ``error:`` line with a documented exit code and no traceback; and never a
    control character of the input's on a terminal."""
    assert control_free(result.stdout) and control_free(result.stderr), repr(result.output)
    if result.exit_code == 0:
        assert allowed_success, result.output
        return
    assert result.exit_code in DOCUMENTED_EXIT_CODES, result.output
    assert "Traceback" not in result.output
    assert "add -v for the traceback" not in result.stderr, result.stderr  # an unexpected error: a bug
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and result.stderr.splitlines()[-1] == errors[0], result.stderr

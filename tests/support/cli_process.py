"""The real ``adapters`` program (and registry writers) as subprocesses, for what an in-process call
cannot show: kill -9, concurrent writers, a lock held by another process.

Crashes are placed with the ``ADAPTERS_FAULT`` test hook (tests/support/faults.py): ``POINT:kill`` makes the
process SIGKILL itself at that point; ``POINT:stop`` makes it SIGSTOP itself there, and
``wait_until_stopped`` returns once it has (``waitpid`` with ``WUNTRACED``: no polling, no sleeps), so
a test can look at the registry at that instant, then kill or resume the process.
"""

import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent
# The real command, with the fault hooks of support/faults.py armed from ADAPTERS_FAULT.
ADAPTERS = [sys.executable, "-m", "support.adapters_command"]

# Registers one version the way `adapters train` does after training (artifact, dataset copy, one
# registration transaction), through the registry as the CLI opens it, so fault points apply.
SEED_WRITER = """
import sys
from support.faults import arm_from_environment
arm_from_environment()
from loraledger.settings import Settings
from support.seeding import seed_version
name, parent, weights = sys.argv[1:4]
registry = Settings.load().open_registry()
print(seed_version(registry, name, weights=weights.encode(), parent=None if parent == "-" else parent).ref)
"""


@dataclass
class Finished:
    returncode: int
    stdout: str
    stderr: str


class Process:
    """A started subprocess whose output goes to files (a stopped process must not block a pipe)."""

    def __init__(self, argv: list[str], env: Mapping[str, str], workdir: Path) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self._out = (workdir / "stdout").open("w+")
        self._err = (workdir / "stderr").open("w+")
        self.popen = subprocess.Popen(
            argv, env=dict(env), stdout=self._out, stderr=self._err, stdin=subprocess.DEVNULL
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def wait_until_stopped(self) -> None:
        _, status = os.waitpid(self.pid, os.WUNTRACED)
        if not os.WIFSTOPPED(status):
            self.popen.returncode = os.waitstatus_to_exitcode(status)
            raise AssertionError(f"process ended before its fault point:\n{self.finish().stderr}")

    def resume(self) -> None:
        os.kill(self.pid, signal.SIGCONT)

    def kill(self) -> None:
        os.kill(self.pid, signal.SIGKILL)

    def finish(self, timeout: float = 600) -> Finished:
        if self.popen.returncode is None:
            self.popen.wait(timeout=timeout)
        outputs = []
        for handle in (self._out, self._err):
            handle.seek(0)
            outputs.append(handle.read())
            handle.close()
        return Finished(self.popen.returncode, outputs[0], outputs[1])


def env(**extra: str) -> dict[str, str]:
    """This process's environment (the test's ADAPTERS_HOME and friends) plus ``extra``."""
    merged = dict(os.environ)
    merged["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS), merged.get("PYTHONPATH")]))
    merged.update(extra)
    return merged


def start(*args: str, workdir: Path, **extra: str) -> Process:
    return Process([*ADAPTERS, *args], env(**extra), workdir)


def run(*args: str, workdir: Path, **extra: str) -> Finished:
    return start(*args, workdir=workdir, **extra).finish()


def start_seed_writer(name: str, parent: str | None, weights: str, *, workdir: Path, **extra: str) -> Process:
    argv = [sys.executable, "-c", SEED_WRITER, name, parent or "-", weights]
    return Process(argv, env(**extra), workdir)

"""Data-parallel training through ``accelerate launch``: the parent process writes the job to a file,
launches N workers running this module, and reads back the outcome the main worker wrote.

Workers only train and save into the run folder; the parent (the CLI) alone touches the registry and
the artifact store. Each worker prepares the same packed batches from the same seed and the Trainer
hands each one its share of them. On GPUs the workers talk over NCCL, one process per device; on CPU
over gloo. The workers' output goes to the run's log file; the main worker reports progress through a
small file the parent follows, so the progress bar works as in a single process.
"""

import json
import logging
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from loraledger.schemas.errors import LedgerError
from loraledger.schemas.jobs import TrainJob, TrainOutcome

POLL_SECONDS = 0.5


def launch(job: TrainJob, num_processes: int, run_dir: Path, progress: Any = None) -> TrainOutcome:
    job_file = run_dir / "job-workers.json"
    outcome_file = run_dir / "outcome.json"
    progress_file = run_dir / "progress.jsonl"
    log_file = run_dir / "train.log"
    for stale in (outcome_file, progress_file):
        stale.unlink(missing_ok=True)
    job_file.write_text(job.model_dump_json())
    command = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--num_processes",
        str(num_processes),
        "--num_machines",
        "1",
        "--main_process_port",
        str(_free_port()),
        "--mixed_precision",
        "no",  # the recipe sets precision itself
        "--dynamo_backend",
        "no",
        # The torchrun-based launcher, despite its name, on CPUs too: the Trainer's accelerator then
        # runs MULTI_CPU over gloo. (`--cpu` picks a launcher that starts one process, or needs MPI.)
        "--multi_gpu",
        "-m",
        "loraledger.trainer.launch",
        str(job_file),
        str(outcome_file),
        str(progress_file),
    ]
    with log_file.open("a") as log:
        # Its own process group, so that an interrupt takes down the launcher and every worker.
        worker = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        followed = 0
        while True:
            try:
                returncode = worker.wait(timeout=POLL_SECONDS)
            except subprocess.TimeoutExpired:
                followed = _follow(progress_file, followed, progress)
                continue
            except BaseException:  # Ctrl-C: take the workers down with us
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait()
                raise
            _follow(progress_file, followed, progress)
            break
    if returncode != 0 or not outcome_file.exists():
        lines = log_file.read_text(errors="replace").strip().splitlines()
        last = next((line for line in reversed(lines) if line.strip()), "no output")
        raise LedgerError(
            f"{num_processes} training processes failed (exit {returncode}): {last.strip()} "
            f"(full log: {log_file})"
        )
    return TrainOutcome.model_validate_json(outcome_file.read_text())


def _follow(progress_file: Path, offset: int, progress: Any) -> int:
    """Replay the progress lines written since ``offset``; returns the new offset."""
    if progress is None or not progress_file.exists():
        return offset
    with progress_file.open() as lines:
        lines.seek(offset)
        while (line := lines.readline()).endswith("\n"):
            progress(*json.loads(line))
            offset = lines.tell()
    return offset


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def main() -> None:
    job_file, outcome_file, progress_file = (Path(arg) for arg in sys.argv[1:4])
    # torchrun's environment, read before the Trainer sets up the process group its own way.
    rank = int(os.environ.get("RANK", "0"))
    _log_to_stderr(rank)
    from loraledger.trainer.recipe import train

    job = TrainJob.model_validate_json(job_file.read_text())

    def report(*values: Any) -> None:
        with progress_file.open("a") as lines:
            lines.write(json.dumps(values) + "\n")

    outcome = train(job, progress=report if rank == 0 else None)
    if rank == 0:
        outcome_file.write_text(outcome.model_dump_json())


def _log_to_stderr(rank: int) -> None:
    """Workers' stderr is the run's log file: send our stages and transformers' INFO there."""
    from transformers.utils import logging as hf_logging

    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(f"%(asctime)s [rank {rank}] %(name)s %(levelname)s %(message)s"))
    hf_logging.disable_default_handler()
    logging.getLogger("transformers").addHandler(handler)
    logging.getLogger("transformers").setLevel(logging.INFO)  # the Trainer quiets replicas itself
    logging.getLogger("loraledger").addHandler(handler)
    logging.getLogger("loraledger").setLevel(logging.INFO if rank == 0 else logging.WARNING)


if __name__ == "__main__":
    main()

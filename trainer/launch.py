"""Data-parallel training through ``accelerate launch``: the parent process writes the job to a file,
launches N workers running this module, and reads back the outcome the main worker wrote.

Workers only train and save into the run folder; the parent (the CLI) alone touches the registry.
On CPU the workers talk over gloo; on GPUs over NCCL, one process per device.
"""

import socket
import subprocess
import sys
from pathlib import Path

from loraledger.schemas.errors import LedgerError
from loraledger.schemas.jobs import TrainJob, TrainOutcome


def launch(job: TrainJob, num_processes: int, run_dir: Path) -> TrainOutcome:
    import torch

    job_file = run_dir / "job-workers.json"
    outcome_file = run_dir / "outcome.json"
    outcome_file.unlink(missing_ok=True)
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
        *(["--multi_gpu"] if torch.cuda.is_available() else ["--cpu"]),
        "-m",
        "loraledger.trainer.launch",
        str(job_file),
        str(outcome_file),
    ]
    with (run_dir / "workers.log").open("w") as log:
        finished = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, check=False)
    if finished.returncode != 0 or not outcome_file.exists():
        tail = (run_dir / "workers.log").read_text().strip().splitlines()[-1:] or ["no output"]
        raise LedgerError(
            f"{num_processes} training processes failed (exit {finished.returncode}): {tail[0]} "
            f"(full log: {run_dir / 'workers.log'})"
        )
    return TrainOutcome.model_validate_json(outcome_file.read_text())


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def main() -> None:
    from loraledger.trainer.recipe import train

    job_file, outcome_file = (Path(arg) for arg in sys.argv[1:3])
    job = TrainJob.model_validate_json(job_file.read_text())
    outcome = train(job)
    from accelerate import PartialState

    if PartialState().is_main_process:
        outcome_file.write_text(outcome.model_dump_json())


if __name__ == "__main__":
    main()

"""Progress bars on stderr for long work: building a base model, training, evaluating."""

from collections.abc import Iterator
from contextlib import contextmanager

from rich.progress import (
    BarColumn,
    Progress,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from loraledger.cli.output import err


def _bar() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=err(),
        transient=False,
    )


class TrainBar:
    """Step, loss, tokens per second and ETA of a training run."""

    def __init__(self, progress: Progress, description: str) -> None:
        self.progress = progress
        self.description = description
        self.task: TaskID | None = None  # drawn at the first step: a refused run shows no empty bar

    def __call__(self, step: int, total: int, loss: float | None, tokens: int, elapsed: float) -> None:
        speed = tokens / elapsed if elapsed > 0 else 0.0
        status = (
            f"step {step}/{total}  loss {loss:.4f}  {speed:,.0f} tok/s"
            if loss is not None
            else f"step {step}"
        )
        if self.task is None:
            # A resumed run starts at its checkpoint's step; the bar's ETA counts from there.
            self.task = self.progress.add_task(self.description, total=total, completed=step - 1, status="")
        self.progress.update(self.task, completed=step, total=total, status=status)


class BuildBar:
    """Pre-training of a built-in base model."""

    def __init__(self, progress: Progress, description: str) -> None:
        self.progress = progress
        self.description = description
        self.task: TaskID | None = None

    def __call__(self, step: int, total: int, loss: float) -> None:
        if self.task is None:
            self.task = self.progress.add_task(self.description, total=total, status="")
        self.progress.update(self.task, completed=step, status=f"loss {loss:.3f}")


@contextmanager
def bars(enabled: bool = True) -> Iterator[Progress | None]:
    if not enabled:
        yield None
        return
    with _bar() as progress:
        yield progress

"""A log file per training run (``runs/<name>-<key>/train.log``): our stage messages, the trainer's
step losses and the libraries' own logs (transformers' "Running training", checkpoint saves, resumes).

The terminal keeps its quiet: the libraries' INFO messages go to the file only, their warnings and
errors still reach stderr as before. Messages from before the run folder is known (resolving the
base, reading data) are held and written first.
"""

import dataclasses
import logging
from logging.handlers import MemoryHandler
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from loraledger.training import Hooks

FORMAT = "%(asctime)s %(name)s %(levelname)s %(message)s"
# Loggers whose INFO records belong in the run log.
LOGGERS = ("loraledger", "transformers", "peft", "accelerate", "bitsandbytes")
log = logging.getLogger("loraledger.run")


class RunLog:
    def __init__(self) -> None:
        self.path: Path | None = None
        self._held = MemoryHandler(capacity=10_000, flushLevel=logging.CRITICAL + 1)
        self._file: logging.FileHandler | None = None
        self._levels: dict[str, int] = {}
        self._terminal: logging.Handler | None = None

    def __enter__(self) -> "RunLog":
        self._held.setFormatter(logging.Formatter(FORMAT))
        self._quiet_transformers_terminal()
        self._levels = {name: logging.getLogger(name).level for name in LOGGERS}
        for name in LOGGERS:
            logging.getLogger(name).setLevel(logging.INFO)
            logging.getLogger(name).addHandler(self._held)
        return self

    def _quiet_transformers_terminal(self) -> None:
        """transformers prints through its own stderr handler at its verbosity; keep that for the
        terminal while its logger lets INFO through to the file."""
        try:
            from transformers.utils import logging as hf_logging
        except ImportError:
            return
        self._terminal = logging.StreamHandler()
        self._terminal.setLevel(hf_logging.get_verbosity())
        hf_logging.disable_default_handler()
        logging.getLogger("transformers").addHandler(self._terminal)

    def open(self, path: Path) -> None:
        """Start writing to ``path`` (appending: a resumed run continues the same log)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._file = logging.FileHandler(path, encoding="utf-8")
        self._file.setFormatter(logging.Formatter(FORMAT))
        self._held.setTarget(self._file)
        self._held.flush()
        for name in LOGGERS:
            logger = logging.getLogger(name)
            logger.removeHandler(self._held)
            logger.addHandler(self._file)

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if error is not None and not isinstance(error, KeyboardInterrupt):
            log.error("failed: %s: %s", type(error).__name__, error)
        for name in LOGGERS:
            logger = logging.getLogger(name)
            for handler in (self._held, self._file, self._terminal):
                if handler is not None:
                    logger.removeHandler(handler)
            logger.setLevel(self._levels[name])
        if self._terminal is not None:
            from transformers.utils import logging as hf_logging

            hf_logging.enable_default_handler()
        self._held.close()
        if self._file is not None:
            self._file.close()

    def wrap(self, hooks: "Hooks") -> "Hooks":
        """A copy of the caller's hooks whose stage messages and warnings also land in the log."""
        stage, warn = hooks.stage, hooks.warn

        def logged_stage(message: str) -> None:
            log.info(message)
            stage(message)

        def logged_warn(message: str) -> None:
            log.warning(message)
            warn(message)

        return dataclasses.replace(hooks, stage=logged_stage, warn=logged_warn)

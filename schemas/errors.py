"""The one error family every layer raises for problems a user can fix.

The CLI prints these as a single line and exits non-zero; anything else is a bug and gets a traceback
with ``-v``. Each layer subclasses ``LedgerError`` so callers can tell where a problem came from without
the layers importing each other.
"""


class LedgerError(Exception):
    """A problem with the user's input, configuration or stored state, explained in one line."""

    exit_code = 1


class InvalidInput(LedgerError):
    """A name, ref, flag or file the user supplied is malformed."""

    exit_code = 2


class NotFound(LedgerError):
    """A ref, adapter, dataset or artifact does not exist."""

    exit_code = 3


class Conflict(LedgerError):
    """The request contradicts what is already recorded (wrong base, changed rank, newer schema...)."""

    exit_code = 4


class Corrupt(LedgerError):
    """Stored bytes no longer match their recorded digest."""

    exit_code = 5


class BudgetNotMet(LedgerError):
    """No candidate update forgets within the retention budget while keeping a useful share of its gain
    (``outcome``: the search, a ``loraledger.retention.RetentionOutcome``)."""

    exit_code = 6

    def __init__(self, message: str, outcome: object = None) -> None:
        super().__init__(message)
        self.outcome = outcome

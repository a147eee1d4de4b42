"""Registry-specific errors; all are LedgerErrors the CLI prints in one line."""

from loraledger.schemas.errors import Conflict, Corrupt, InvalidInput, LedgerError, NotFound


class SchemaMismatch(Conflict):
    """The database's schema is not the one this code was written for."""


class StoreUnavailable(LedgerError):
    """The database or artifact store cannot be reached or written (locked, full, offline)."""


__all__ = [
    "Conflict",
    "Corrupt",
    "InvalidInput",
    "LedgerError",
    "NotFound",
    "SchemaMismatch",
    "StoreUnavailable",
]

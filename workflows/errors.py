"""The errors the library raises for problems a user can fix, each with the exit code the CLI uses.

``LedgerError`` is the family; catch it to handle any of them. The library never raises ``SystemExit``:
printing one line and choosing an exit code is the CLI's business.
"""

from loraledger.schemas.errors import BudgetNotMet, Conflict, Corrupt, InvalidInput, LedgerError, NotFound

__all__ = ["BudgetNotMet", "Conflict", "Corrupt", "InvalidInput", "LedgerError", "NotFound"]

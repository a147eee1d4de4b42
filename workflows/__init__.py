"""loraledger: an adapter registry and version manager for continual LoRA fine-tuning.

The library is the product; the ``adapters`` command, the server and the dashboard are its clients::

    import loraledger

    ledger = loraledger.open()                       # ADAPTERS_HOME, ADAPTERS_DB, ADAPTERS_STORE
    result = ledger.train("legal", ["update-1.jsonl"], base="builtin:tiny", eval=["eval-1.jsonl"])
    ledger.versions("legal")                         # plain schema objects, ``.to_dict()`` on each
    ledger.rollback("legal", reason="forgot general English")

Importing this package loads neither torch, transformers nor peft: they are imported by the calls
that need a model (train, evaluate, merge, load, ...).
"""

from typing import TYPE_CHECKING, Any

from loraledger.errors import Conflict, Corrupt, InvalidInput, LedgerError, NotFound

if TYPE_CHECKING:
    from pathlib import Path

    from loraledger.ledger import Ledger


def open(
    home: "str | Path | None" = None,
    *,
    db: str | None = None,
    store: str | None = None,
    user: str | None = None,
    cache: "str | Path | None" = None,
) -> "Ledger":
    """Open the registry the ``adapters`` command would use.

    Each argument wins over its environment variable, which wins over the default: ``home`` over
    ``ADAPTERS_HOME`` (``~/.adapters``), ``db`` over ``ADAPTERS_DB`` (``sqlite:///HOME/registry.db``),
    ``store`` over ``ADAPTERS_STORE`` (``HOME/artifacts``), ``user`` over ``ADAPTERS_USER`` (the login
    name), ``cache`` over ``ADAPTERS_CACHE`` (``HOME/cache``). An embedded SQLite registry is created
    (or migrated) on first use.
    """
    from loraledger.ledger import Ledger
    from loraledger.settings import Settings

    return Ledger(Settings.load(home, db=db, store=store, user=user, cache=cache))


def __getattr__(name: str) -> Any:
    # The Ledger class and result types on first use, so that `import loraledger` stays light.
    if name == "Ledger":
        from loraledger.ledger import Ledger

        return Ledger
    raise AttributeError(f"module 'loraledger' has no attribute {name!r}")


__all__ = ["Conflict", "Corrupt", "InvalidInput", "Ledger", "LedgerError", "NotFound", "open"]

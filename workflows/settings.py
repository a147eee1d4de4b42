"""Where things live. ``loraledger.open()`` and the CLI read the environment here, and
only here; they hand explicit values down to the registry and the trainer.

- ``ADAPTERS_HOME`` (default ``~/.adapters``, or ``--home``): ``registry.db``, ``artifacts/``,
  ``cache/`` (built-in models, fingerprints), ``runs/`` (checkpoints and logs of training runs).
- ``ADAPTERS_DB``: any SQLAlchemy URL (``postgresql+psycopg://user@host/db``) instead of the SQLite file.
- ``ADAPTERS_STORE``: any fsspec URL (``s3://bucket/prefix``) instead of the local artifact folder;
  its credentials and endpoint come from the environment (``AWS_*``, ``FSSPEC_S3_*``).
- ``ADAPTERS_CACHE``: where built-in base models and fingerprints are cached (default ``HOME/cache``);
  several homes can share one.
- ``ADAPTERS_USER``: who is recorded as author of versions and alias moves (default: the login name).
"""

import getpass
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from loraledger.registry import Registry


@dataclass(frozen=True)
class Settings:
    home: Path
    db_url: str
    store_url: str
    user: str
    host: str
    cache_dir: Path
    verbose: int = 0

    @classmethod
    def load(
        cls,
        home: str | Path | None = None,
        verbose: int = 0,
        *,
        db: str | None = None,
        store: str | None = None,
        user: str | None = None,
        cache: str | Path | None = None,
    ) -> "Settings":
        """Explicit values first, then the environment, then the defaults."""
        env = os.environ
        home = Path(home or env.get("ADAPTERS_HOME") or Path.home() / ".adapters").expanduser().resolve()
        return cls(
            home=home,
            db_url=db or env.get("ADAPTERS_DB") or f"sqlite:///{home / 'registry.db'}",
            store_url=store or env.get("ADAPTERS_STORE") or str(home / "artifacts"),
            user=user or env.get("ADAPTERS_USER") or _login(),
            host=socket.gethostname(),
            cache_dir=Path(cache or env.get("ADAPTERS_CACHE") or home / "cache").expanduser().resolve(),
            verbose=verbose,
        )

    @property
    def runs_dir(self) -> Path:
        return self.home / "runs"

    def open_registry(self) -> "Registry":
        from loraledger import faults
        from loraledger.registry import Registry

        # Storage options (credentials, endpoint) for an s3:// store come from the environment and
        # fsspec's configuration (AWS_*, FSSPEC_S3_*), as for any other boto-based tool.
        registry = Registry.open(self.db_url, self.store_url, user=self.user, host=self.host)
        faults.registry_opened(registry)
        return registry


def _login() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers)
        return "unknown"

"""What ``adapters serve`` is told: which base or adapters, where to listen, and the bounds."""

import ipaddress
from dataclasses import dataclass, field

from loraledger.errors import InvalidInput


@dataclass(frozen=True)
class ServeOptions:
    base: str | None = None
    """Serve every adapter on this base (``builtin:tiny``, a folder, a Hub id)."""
    names: tuple[str, ...] = ()
    """Serve only these adapters (their base is the one their current versions were trained on)."""
    host: str = "127.0.0.1"
    port: int = 8000
    api_key: str | None = field(default=None, repr=False)
    """When set, every /v1 request needs ``Authorization: Bearer KEY``."""
    max_loaded: int = 4
    """Adapters kept on the base at once; the least recently used one goes first."""
    max_tokens: int = 512
    """The largest ``max_tokens`` a request may ask for (and the default for chat)."""
    max_body_bytes: int = 1_000_000
    device: str | None = None
    log_prompts: bool = False

    def __post_init__(self) -> None:
        if self.base and self.names:
            raise InvalidInput("give either --base MODEL or adapter NAMEs, not both")
        if self.max_loaded < 1:
            raise InvalidInput(f"--max-loaded must be at least 1, not {self.max_loaded}")
        if self.max_tokens < 1:
            raise InvalidInput(f"--max-tokens must be at least 1, not {self.max_tokens}")
        if not 0 <= self.port <= 65535:
            raise InvalidInput(f"--port must be between 0 and 65535, not {self.port}")

    @property
    def loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

"""Start-up: choose the base, load it once, build the app, listen."""

import socket
from collections.abc import Callable
from typing import TYPE_CHECKING

from loraledger.errors import InvalidInput
from loraledger.server.options import ServeOptions

if TYPE_CHECKING:
    from fastapi import FastAPI

    from loraledger.ledger import Ledger
    from loraledger.schemas.records import BaseModelRecord


def choose_base(ledger: "Ledger", options: ServeOptions) -> "BaseModelRecord":
    """``--base``, or the one base the served adapters' current versions were trained on."""
    if options.base:
        return ledger.identify_base(options.base)
    names = list(options.names) or [a.name for a in ledger.adapters() if a.current is not None]
    if not names:
        raise InvalidInput(
            "nothing to serve: the registry has no adapter with a current version; "
            "pass --base MODEL to serve a base model"
        )
    bases: dict[str, BaseModelRecord] = {}
    users: dict[str, list[str]] = {}
    for name in names:
        base = ledger.version(name).base
        bases.setdefault(base.fingerprint, base)
        users.setdefault(base.fingerprint, []).append(name)
    if len(bases) > 1:
        listing = "; ".join(f"{bases[key].model_id}: {', '.join(users[key])}" for key in bases)
        raise InvalidInput(
            f"these adapters are on different bases ({listing}): one server holds one base, "
            "pass --base MODEL or the NAMEs of one base"
        )
    return next(iter(bases.values()))


def create_app(ledger: "Ledger", options: ServeOptions) -> "FastAPI":
    """The ASGI app with its base loaded (seconds to minutes): run it with any ASGI server."""
    from loraledger.server.app import create_api
    from loraledger.server.catalog import Catalog
    from loraledger.server.engine import Engine

    base = choose_base(ledger, options)
    model, tokenizer = ledger.load_base(base, device=options.device)
    engine = Engine(model, tokenizer, max_loaded=options.max_loaded)
    catalog = Catalog(ledger, base, options.names)
    return create_api(catalog, engine, ledger.settings.cache_dir / "serve-adapters", options)


def listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family, reuse_port=False)
    except OSError as exc:
        raise InvalidInput(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def serve(ledger: "Ledger", options: ServeOptions, *, ready: Callable[[str], None] | None = None) -> None:
    """Load the base, listen, and serve until interrupted. ``ready`` gets the URL once listening
    (with ``port=0`` the system picks a free port)."""
    import os

    # OpenMP's threads spin after each parallel region, waiting for more work; between requests (and
    # on a shared machine) that spinning is CPU taken from the next token. Measured on builtin:tiny,
    # 2 busy cores: sequential requests 0.55 -> 2.07 req/s, 30 -> 125 tokens per CPU-s. It only
    # works if set before torch is first imported (this process's entry point); the user's value wins.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import uvicorn

    app = create_app(ledger, options)
    sock = listen(options.host, options.port)
    host, port = sock.getsockname()[:2]
    config = uvicorn.Config(app, log_level="info", access_log=True, timeout_graceful_shutdown=30)
    server = uvicorn.Server(config)
    if ready is not None:
        ready(f"http://{f'[{host}]' if ':' in host else host}:{port}")
    server.run(sockets=[sock])

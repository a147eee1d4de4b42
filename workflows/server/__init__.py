"""``loraledger.server``: an OpenAI-compatible HTTP server over a ``Ledger`` (``adapters serve``).

One base model is loaded once; the versions asked for are PEFT adapters put on it on demand (an LRU,
by artifact digest). Every request resolves its model name against the registry again, so an alias
moved by ``adapters promote``/``rollback``/``alias`` in another process answers the next request::

    import loraledger
    from loraledger.server import ServeOptions, serve

    serve(loraledger.open(), ServeOptions(base="builtin:tiny"))

This package talks to the registry only through ``Ledger``; FastAPI and uvicorn come with the
``serve`` extra and are imported here, never by ``import loraledger``.
"""

from loraledger.server.options import ServeOptions
from loraledger.server.run import create_app, serve

__all__ = ["ServeOptions", "create_app", "serve"]

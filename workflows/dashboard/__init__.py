"""``adapters ui``: a read-only web dashboard of the registry.

A client of the library like the CLI: every page is built from ``Ledger`` reads (never the store or
SQL), rendered on the server (no script, no CDN), and answered as JSON too. Needs the ``serve`` extra
(FastAPI, uvicorn); never imports torch.

    from loraledger.dashboard import create_app
    app = create_app(loraledger.open())      # an ASGI app: uvicorn, or Starlette's TestClient
"""

from loraledger.dashboard.app import create_app, serve

__all__ = ["create_app", "serve"]

"""The dashboard's routes: GET only, every page also as JSON (``Accept: application/json`` or a
``.json`` path), HTML rendered by Jinja with autoescaping on, nothing served from outside the package.
"""

import json
from collections.abc import Callable
from importlib import resources
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape

from loraledger.dashboard.pages import (
    Page,
    adapter_page,
    adapter_url,
    adapters_page,
    datasets_page,
    version_page,
)
from loraledger.errors import InvalidInput, LedgerError, NotFound
from loraledger.ledger import Ledger
from loraledger.shapes import finite

# Static files by name, read once from the package: a URL names a key of this dict, never a path.
STATIC = {"style.css": "text/css; charset=utf-8"}


def templates() -> Environment:
    env = Environment(
        loader=PackageLoader("loraledger.dashboard", "templates"),
        autoescape=select_autoescape(["html"], default=True),  # every {{ value }} is escaped
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["adapter_url"] = adapter_url
    return env


def wants_json(request: Request, path: str) -> bool:
    if path.endswith(".json"):
        return True
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


def create_app(ledger: Ledger) -> FastAPI:
    """The dashboard over ``ledger``: read-only, it calls only ``Ledger`` reads."""
    # No /docs, /redoc or /openapi.json: FastAPI's docs pages load their scripts from a CDN.
    app = FastAPI(title="loraledger", docs_url=None, redoc_url=None, openapi_url=None)
    env = templates()
    static = {
        name: (resources.files("loraledger.dashboard").joinpath("static", name).read_bytes(), media)
        for name, media in STATIC.items()
    }

    def answer(request: Request, path: str, build: Callable[[], Page]) -> Response:
        as_json = wants_json(request, path)
        try:
            page = build()
        except LedgerError as error:
            status = 404 if isinstance(error, NotFound) else 400 if isinstance(error, InvalidInput) else 500
            if as_json:
                return JSONResponse({"error": str(error)}, status_code=status)
            html = env.get_template("error.html").render(title="Not found", message=str(error))
            return HTMLResponse(html, status_code=status)
        if as_json:
            body = json.dumps(finite(page.data()), default=str, indent=1)
            return Response(body, media_type="application/json")
        html = env.get_template(page.template).render(title=page.title, **page.context)
        return HTMLResponse(html)

    @app.get("/", include_in_schema=False)
    def home() -> Response:
        return RedirectResponse("/adapters", status_code=302)

    @app.get("/adapters")
    @app.get("/adapters.json")
    def adapters(request: Request) -> Response:
        return answer(request, request.url.path, lambda: adapters_page(ledger))

    @app.get("/adapters/{name}")
    def adapter(request: Request, name: str) -> Response:
        plain = name.removesuffix(".json")
        return answer(request, name, lambda: adapter_page(ledger, plain))

    @app.get("/adapters/{name}/versions/{number}")
    def version(request: Request, name: str, number: str) -> Response:
        plain = number.removesuffix(".json")
        if not plain.isdigit():
            return answer(request, number, lambda: _invalid(f"version {plain!r} is not a number"))
        return answer(request, number, lambda: version_page(ledger, name, int(plain)))

    @app.get("/datasets")
    @app.get("/datasets.json")
    def datasets(request: Request, adapter: str | None = None) -> Response:
        return answer(request, request.url.path, lambda: datasets_page(ledger, adapter or None))

    @app.get("/static/{name}")
    def static_file(name: str) -> Response:
        if name not in static:
            return Response("not found", status_code=404, media_type="text/plain")
        body, media = static[name]
        return Response(body, media_type=media, headers={"Cache-Control": "max-age=3600"})

    @app.middleware("http")
    async def headers(request: Request, call_next: Callable[[Request], Any]) -> Response:
        response: Response = await call_next(request)
        # Belt and braces beside escaping: no script runs on these pages, none from elsewhere.
        response.headers["Content-Security-Policy"] = (
            "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'"
        )
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        return response

    return app


def _invalid(message: str) -> Page:
    raise InvalidInput(message)


def serve(ledger: Ledger, *, host: str = "127.0.0.1", port: int = 8765) -> None:
    """Run the dashboard until interrupted."""
    import uvicorn

    uvicorn.run(create_app(ledger), host=host, port=port, log_level="warning")

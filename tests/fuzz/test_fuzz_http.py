"""The same promises over HTTP (issue 17): whatever a client sends to the dashboard or the server,
the answer is a 4xx in the documented shape (never a 5xx, never a traceback), nothing is registered,
and no user text comes back as markup.

Both apps run in process (FastAPI's TestClient): the dashboard on a seeded registry, the server on
``builtin:tiny`` with one adapter imported, ``max_tokens`` bounded to keep generation short.
"""

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st
from test_fuzz_cli import TEXT

import loraledger
from loraledger.registry import Registry

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12,
)
# Request bodies: mostly the right keys with wrong values, sometimes anything at all.
FIELDS = ("model", "prompt", "messages", "max_tokens", "temperature", "top_p", "stop", "seed", "stream")
BODIES = st.one_of(
    st.dictionaries(st.sampled_from(FIELDS), JSON_VALUES, max_size=6),
    JSON_VALUES,
)


def _versions(registry: Registry) -> list[str]:
    return [version.ref for version in registry.versions()]


@pytest.fixture
def dashboard(registry: Registry) -> Iterator[TestClient]:
    from loraledger.dashboard.app import create_app

    with TestClient(create_app(loraledger.open())) as client:
        yield client


@given(text=TEXT, as_json=st.booleans())
def test_dashboard_paths(dashboard: TestClient, registry: Registry, text: str, as_json: bool) -> None:
    before = _versions(registry)
    headers = {"Accept": "application/json"} if as_json else {}
    segment = quote(text, safe="")
    for path in (
        f"/adapters/{segment}",
        f"/adapters/ip/versions/{segment}",
        f"/datasets?adapter={segment}",
        f"/{segment}",
    ):
        response = dashboard.get(path, headers=headers)
        assert response.status_code in (200, 400, 404, 405), (path, response.status_code)
        assert "<script" not in response.text.lower()  # user text is escaped, and pages ship no script
        if as_json and response.status_code >= 400:
            assert isinstance(response.json(), dict)
    assert _versions(registry) == before


@pytest.fixture(scope="module")
def server_app(tiny_base: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    from support.adapters import make_lora

    from loraledger.server.options import ServeOptions
    from loraledger.server.run import create_app

    root = tmp_path_factory.mktemp("fuzz-serve")
    ledger = loraledger.open(root / "home", cache=tiny_base.parent.parent, user="tester")
    adapter = make_lora(tiny_base, root / "made", seed=1, base_id="builtin:tiny")
    ledger.import_adapter("legal", str(adapter), promote=True)
    app = create_app(ledger, ServeOptions(base="builtin:tiny", max_tokens=4, max_body_bytes=20_000))
    with TestClient(app) as client:
        client.ledger = ledger  # type: ignore[attr-defined]
        yield client


def _assert_openai_error(response: Any) -> None:
    error = response.json()["error"]
    assert set(error) >= {"message", "type", "code"}
    assert isinstance(error["message"], str) and "\n" not in error["message"].strip()
    assert "Traceback" not in response.text


@given(body=BODIES, chat=st.booleans())
def test_server_request_bodies(server_app: TestClient, body: Any, chat: bool) -> None:
    before = _versions(server_app.ledger.registry)  # type: ignore[attr-defined]
    path = "/v1/chat/completions" if chat else "/v1/completions"
    response = server_app.post(path, content=json.dumps(body, allow_nan=True))
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        _assert_openai_error(response)
    assert _versions(server_app.ledger.registry) == before  # type: ignore[attr-defined]


@given(model=TEXT)
def test_server_model_names(server_app: TestClient, model: str) -> None:
    response = server_app.post("/v1/completions", json={"model": model, "prompt": "the", "max_tokens": 2})
    assert response.status_code in (200, 400, 404, 422), response.text
    if response.status_code == 200:
        assert response.json()["model"].startswith(("legal@", "builtin:tiny"))
    else:
        _assert_openai_error(response)
    listed = server_app.get(f"/v1/models/{quote(model, safe='')}")
    assert listed.status_code in (200, 404, 405), listed.text

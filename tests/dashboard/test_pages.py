"""The dashboard's pages in process (Starlette's TestClient): JSON shapes equal the CLI's --json,
user strings escaped, nothing but GET, nothing outside the package reachable, no torch."""

import json
import subprocess
import sys

import pytest

from dashboard.conftest import BASE_SCORES, GENERAL, LEGAL, NOTE, REASON, SCORES, Seeded

pytest.importorskip("fastapi")


@pytest.fixture
def client(seeded: Seeded):  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    import loraledger
    from loraledger.dashboard import create_app

    return TestClient(create_app(loraledger.open()))


def test_adapters_page_lists_current_base_and_held_back_latest(client) -> None:  # type: ignore[no-untyped-def]
    rows = client.get("/adapters.json").json()
    assert rows == [
        {
            "name": "legal",
            "current": "legal@2",
            "base": "builtin:tiny",
            "versions": 3,
            "latest": "legal@3",
            "last_update": rows[0]["last_update"],
            "latest_held_back": True,
            "threshold": 0.05,
        }
    ]
    html = client.get("/adapters").text
    assert '<a href="/adapters/legal">legal</a>' in html
    assert "held back" in html


def test_adapter_json_is_the_cli_json(client, adapters) -> None:  # type: ignore[no-untyped-def]
    page = client.get("/adapters/legal", headers={"Accept": "application/json"}).json()
    assert page == client.get("/adapters/legal.json").json()
    assert page["lineage"] == json.loads(adapters("lineage", "legal", "--json").stdout)
    assert page["history"] == json.loads(adapters("history", "legal", "--json").stdout)
    assert page["matrices"] == [json.loads(adapters("evals", "legal", "--json").stdout)]
    matrix = page["matrices"][0]
    labels = {s["digest"]: s["label"] for s in matrix["sets"]}
    recorded = {
        v["number"]: {labels[d]: round(s["nll"], 6) for d, s in v["scores"].items()}
        for v in matrix["versions"]
    }
    assert recorded == SCORES
    assert [v["held_back"] for v in matrix["versions"]] == [False, False, True]
    base = next(iter(matrix["bases"].values()))
    assert {labels[d]: value for d, value in base.items()} == BASE_SCORES


def test_version_json_is_show_json_plus_diff_and_commands(client, adapters) -> None:  # type: ignore[no-untyped-def]
    page = client.get("/adapters/legal/versions/3.json").json()
    assert page["version"] == json.loads(adapters("show", "legal@3", "--json").stdout)
    assert page["diff"] == json.loads(adapters("diff", "legal@2", "legal@3", "--json").stdout)
    assert page["commands"]["make it current"].startswith("adapters promote legal@3 --reason")  # held back
    older = client.get("/adapters/legal/versions/1.json").json()["commands"]
    assert older["roll back to it"] == "adapters rollback legal --to legal@1 --reason 'back to legal@1'"
    assert page["commands"]["diff"] == "adapters diff legal@2 legal@3"


def test_datasets_json_is_the_cli_json(client, adapters) -> None:  # type: ignore[no-untyped-def]
    assert client.get("/datasets.json").json() == json.loads(adapters("datasets", "--json").stdout)
    html = client.get("/datasets?adapter=legal").text
    assert "legal@3" in html


def test_user_strings_are_escaped(client) -> None:  # type: ignore[no-untyped-def]
    version = client.get("/adapters/legal/versions/3").text
    assert NOTE not in version
    assert "&lt;script&gt;alert(&#39;note&#39;)&lt;/script&gt;" in version
    adapter = client.get("/adapters/legal").text
    assert REASON not in adapter and "<img" not in adapter
    assert "&lt;img src=x onerror=alert(1)&gt; &amp; co" in adapter
    assert "<b>text</b>" not in adapter and "general &lt;b&gt;text&lt;/b&gt;" in adapter  # a set's label
    assert "<script" not in version + adapter + client.get("/adapters").text
    missing = client.get("/adapters/%3Cscript%3Ex")
    assert missing.status_code == 400 and "<script>x" not in missing.text  # not a valid name
    assert "&lt;script&gt;x" in missing.text


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_nothing_but_get(client, method: str) -> None:  # type: ignore[no-untyped-def]
    for path in ("/adapters", "/adapters/legal", "/adapters/legal/versions/2", "/datasets"):
        assert client.request(method, path).status_code == 405
    assert client.get("/adapters/legal.json").json()["lineage"][-1]["current"] is False  # unchanged


@pytest.mark.parametrize(
    "path",
    [
        "/static/../pyproject.toml",
        "/static/..%2F..%2Fpyproject.toml",
        "/static/%2e%2e/app.py",
        "/static/app.py",
        "/adapters/..%2F..%2Fetc/versions/1",
        "/adapters/legal/versions/..%2F1",
        "/openapi.json",
        "/docs",
    ],
)
def test_no_path_leads_outside(client, path: str) -> None:  # type: ignore[no-untyped-def]
    response = client.get(path)
    assert response.status_code in (400, 404)
    assert "import" not in response.text and "[project]" not in response.text


def test_unknown_things_say_what_is_missing(client) -> None:  # type: ignore[no-untyped-def]
    assert client.get("/adapters/nope.json").status_code == 404
    response = client.get("/adapters/legal/versions/9.json")
    assert response.status_code == 404 and "legal" in response.json()["error"]
    assert client.get("/adapters/legal/versions/x").status_code == 400
    assert client.get("/static/style.css").headers["content-type"].startswith("text/css")


def test_pages_do_not_import_torch(seeded: Seeded) -> None:
    script = (
        "import sys\n"
        "from fastapi.testclient import TestClient\n"
        "import loraledger\n"
        "from loraledger.dashboard import create_app\n"
        "client = TestClient(create_app(loraledger.open()))\n"
        "for path in ('/adapters', '/adapters/legal', '/adapters/legal/versions/3', '/datasets'):\n"
        "    assert client.get(path).status_code == 200, path\n"
        "heavy = sorted(m for m in ('torch', 'transformers', 'peft', 'matplotlib') if m in sys.modules)\n"
        "print(','.join(heavy) or 'none')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "none"


def test_graph_and_curves_mark_current_and_held_back(client) -> None:  # type: ignore[no-untyped-def]
    html = client.get("/adapters/legal").text
    assert html.count('class="node"') == 3
    assert 'href="/adapters/legal/versions/3"' in html
    assert "← current" in html and "[champion]" in html
    assert html.count('class="curve"') == 2 and 'class="held"' in html
    assert GENERAL not in html and LEGAL in html


def test_ui_command_binds_loopback_by_default(adapters) -> None:  # type: ignore[no-untyped-def]
    result = adapters("ui", "--help")
    assert result.exit_code == 0
    words = " ".join(result.stdout.split())  # click wraps the help at the terminal's width
    assert "--host TEXT" in words and "[default: 127.0.0.1]" in words
    assert "[default: 8765;" in words
    refused = adapters("ui", "--port", "70000")
    assert refused.exit_code == 2 and "70000" in refused.stderr


def test_forgetting_metrics_follow_the_matrix(client) -> None:  # type: ignore[no-untyped-def]
    import re

    html = client.get("/adapters/legal").text
    table = html[html.index('id="metrics-1"') :]
    v3 = re.search(r'<tr data-version="3">(.*?)</tr>', table, re.S)
    assert v3 is not None
    cells = re.findall(r"<td[^>]*>(.*?)</td>", v3.group(1))
    # legal-1 was learned by v1 (1.8) and is 1.3 at v3: BWT -0.5 (-27.8%); nothing forgotten on it
    # (best before v3: 1.5); general text (retention) is 2.4 against the base's 1.95: +23.1%.
    improved = "none: every earlier update improved (least: legal-1 -0.2000, -13.3%)"
    assert cells == ["v3", "-0.5000 (-27.8%)", improved, "+23.1%"]

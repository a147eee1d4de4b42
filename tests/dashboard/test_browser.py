"""The real dashboard: ``adapters ui`` on a loopback port, driven by a real headless browser (Debian's
chromium through Playwright). Screenshots land in build/screenshots/ (the docs page shows them)."""

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from dashboard.conftest import NOTE, REASON, Seeded

REPO = Path(__file__).resolve().parents[2]
SHOTS = REPO / "build" / "screenshots"
ADAPTERS = [sys.executable, "-c", "from loraledger.cli.main import main; main()"]
CHROMIUM = os.environ.get("ADAPTERS_CHROMIUM", "/usr/bin/chromium")


def _require(reason: str) -> None:
    if os.environ.get("ADAPTERS_REQUIRE_SERVICES"):
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture
def browser() -> Iterator[object]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _require("playwright is not installed (pip install playwright)")
    if not Path(CHROMIUM).exists():
        _require(f"no chromium at {CHROMIUM} (apt-get install chromium; .ci/run installs it)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def server(seeded: Seeded) -> Iterator[str]:
    """``adapters ui`` in its own process, ready once its port accepts a connection."""
    port = _free_port()
    process = subprocess.Popen(
        [*ADAPTERS, "ui", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        for _ in range(600):  # bounded: at most 600 tries of up to 0.05 s each
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.05):
                    break
            except OSError:
                # Waits only while the server is starting, and notices at once if it has died.
                try:
                    process.wait(timeout=0.05)
                except subprocess.TimeoutExpired:
                    continue
                pytest.fail(f"adapters ui exited: {process.stdout.read() if process.stdout else ''}")
        else:
            pytest.fail("adapters ui did not accept connections within the polls")
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=30)


def _shot(page: object, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / name), full_page=True)  # type: ignore[attr-defined]


def test_click_through_and_see_a_rollback(browser, server: str, seeded: Seeded) -> None:  # type: ignore[no-untyped-def]
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    scripts_run: list[str] = []
    page.on("dialog", lambda dialog: (scripts_run.append(dialog.message), dialog.dismiss()))

    page.goto(f"{server}/")
    assert page.url == f"{server}/adapters"
    row = page.locator('tr[data-adapter="legal"]')
    assert row.locator("td").nth(1).inner_text() == "legal@2"
    assert "held back" in row.inner_text()
    _shot(page, "adapters.png")

    page.click("text=legal")
    assert page.url == f"{server}/adapters/legal"
    assert page.locator("#lineage svg a.node").count() == 3
    assert "← current" in (page.locator('#lineage a.node[data-version="2"]').text_content() or "")
    matrix = page.locator("#matrix-1")
    v3 = matrix.locator('tr[data-version="3"]')
    assert "held back" in v3.inner_text()
    assert v3.locator("td").nth(1).inner_text().startswith("2.4000")  # general text: forgotten
    assert "+18.8%p" in v3.locator("td").nth(1).inner_text()
    assert matrix.locator('tr[data-version="2"] td').nth(2).inner_text().startswith("1.5000")
    assert page.locator("#curves svg.curve").count() == 2
    assert REASON in page.locator("#history").inner_text()  # shown as text, not run
    _shot(page, "adapter.png")

    page.click('#lineage a.node[data-version="3"]')
    assert page.url == f"{server}/adapters/legal/versions/3"
    assert page.locator("#note").inner_text() == NOTE
    assert page.locator("#diff").count() == 1
    assert "adapters promote legal@3" in page.locator("#commands").inner_text()
    _shot(page, "version.png")

    page.goto(f"{server}/datasets")
    assert page.locator("#dataset-uses tbody tr").count() == 3
    _shot(page, "datasets.png")

    rolled = subprocess.run(
        [*ADAPTERS, "rollback", "legal", "--reason", "forgot <general> text"],
        capture_output=True,
        text=True,
    )
    assert rolled.returncode == 0, rolled.stderr
    page.goto(f"{server}/adapters/legal")
    page.reload()
    assert page.locator("#current").inner_text() == "legal@1"
    assert "forgot <general> text" in page.locator("#history tbody tr").first.inner_text()
    assert page.locator("script").count() == 0 and scripts_run == []


@pytest.mark.skipif(not os.environ.get("ADAPTERS_DOCS_SCREENSHOTS"), reason="ADAPTERS_DOCS_SCREENSHOTS=1")
def test_copy_screenshots_to_the_docs() -> None:
    """With ADAPTERS_DOCS_SCREENSHOTS=1, after the test above: refresh docs/img from this run."""
    target = REPO / "docs" / "img"
    target.mkdir(parents=True, exist_ok=True)
    for shot in sorted(SHOTS.glob("*.png")):
        shutil.copy2(shot, target / f"dashboard-{shot.name}")
    assert list(target.glob("dashboard-*.png"))

"""The live page in real headless Chromium against the whole running system (issue 5):
start a project from the form, watch it reach 100 % and play the video; kill the gateway with
SIGKILL mid-run and restart it: the page recovers, and its event list equals the stored history
(no gap, no duplicate). A screenshot of the finished page is saved in test-artifacts/."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.components import unavailable

from .system import System, running_system

pytestmark = [pytest.mark.kafka, pytest.mark.e2e]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture
def system(kafka_bootstrap: str, tmp_path: Path) -> Iterator[System]:
    with running_system(kafka_bootstrap, tmp_path, "e2e") as running:
        yield running


def _poll(condition, timeout: float, what: str, system: System) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return
        system.check_alive()
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}\n{system.log_tails()}")
        time.sleep(0.25)


def test_start_watch_survive_a_gateway_kill_and_play(system: System) -> None:
    if not CHROMIUM.exists():
        unavailable("Debian's chromium is not installed (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("the playwright package is not installed")

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1100, "height": 1400})
        page.goto(system.base + "/")
        page.fill("input[name=title]", "How tides work")
        page.fill("input[name=segments]", "2")
        page.fill("input[name=target_length_seconds]", "10")
        page.click("#start")
        page.wait_for_url("**/projects/*", timeout=15_000)
        task_id = page.evaluate("window.ytmaker.taskId")
        assert task_id

        def events() -> list[int]:
            return [
                int(x)
                for x in page.eval_on_selector_all(
                    "#events li", "items => items.map(li => li.dataset.offset)"
                )
            ]

        _poll(lambda: len(events()) >= 3, 120, "the first updates on the page", system)

        # SIGKILL the gateway mid-run, restart it on the same port.
        assert page.evaluate("window.ytmaker.status") not in ("completed", "failed")
        system.kill("gateway")
        page.wait_for_selector("#connection[data-state=reconnecting]", timeout=15_000)
        system.start("gateway")
        system.wait_ready(system.base)

        _poll(
            lambda: page.text_content("#status") in ("completed", "failed", "cancelled"),
            300,
            "the run to finish",
            system,
        )
        assert page.text_content("#status") == "completed", system.log_tails()
        assert page.text_content("#overall-text") == "100 %"
        assert page.get_attribute("#connection", "data-state") == "connected"

        # The page's event list is the stored history: same offsets, once each, in order.
        def history() -> list[int]:
            url = f"{system.base}/api/v1/progress/{task_id}/history/db?limit=10000"
            return [item["offset"] for item in httpx.get(url, timeout=10).json()["items"]]

        _poll(lambda: history() == events(), 30, "the page to equal the stored history", system)
        seen = events()
        assert len(seen) == len(set(seen)) and seen == sorted(seen)

        # The video plays in the page; the thumbnail shows.
        page.wait_for_function(
            "() => { const v = document.getElementById('video');"
            " return v.readyState >= 2 && v.duration > 0; }",
            timeout=30_000,
        )
        page.evaluate(
            "() => { const v = document.getElementById('video'); v.muted = true; return v.play(); }"
        )
        page.wait_for_function(
            "() => document.getElementById('video').currentTime > 0.2", timeout=30_000
        )
        page.wait_for_function(
            "() => document.getElementById('thumbnail').naturalWidth > 0", timeout=15_000
        )

        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "gateway-live-page.png"), full_page=True)
        browser.close()

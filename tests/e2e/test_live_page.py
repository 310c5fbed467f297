"""The live page (on the TypeScript SDK's browser build) in real headless Chromium against the
whole running system, through a TCP proxy that can cut the network:

- a run from the form to the finished video: a network cut (the run goes on meanwhile) and a
  gateway SIGKILL + restart mid-run, held there by pauses; the page's event list equals the
  stored history (no gap, no duplicate); the video plays, the thumbnail and the script show;
  the stage timeline has a finished bar per stage;
- my runs: the run is listed with its status, progress and age, and the filters work;
- the controls: run again, pause, resume, cancel.

Screenshots are kept in test-artifacts/ (live-page-run.png, live-page-timeline.png,
live-page-runs.png)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.components import unavailable
from tests.support.netcut import TcpProxy

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
STAGES = ("script", "images", "audio", "avatars", "render", "upload")


@pytest.fixture(scope="module")
def system(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    with running_system(kafka_bootstrap, tmp_path_factory.mktemp("live"), "e2e") as running:
        yield running


@pytest.fixture(scope="module")
def proxy(system: System) -> Iterator[TcpProxy]:
    cutter = TcpProxy(system.gateway_port)
    yield cutter
    cutter.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        unavailable("Debian's chromium is not installed (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("the playwright package is not installed")
    with sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def _poll(
    condition: Callable[[], object],
    timeout: float,
    what: str,
    system: System,
    seen: Callable[[], object] | None = None,
) -> None:
    """Wait for `condition`; on timeout, fail with what `seen` shows and the services' logs."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return
        system.check_alive()
        if time.monotonic() > deadline:
            shown = f" (seen: {seen()})" if seen is not None else ""
            raise AssertionError(f"timed out waiting for {what}{shown}\n{system.log_tails()}")
        time.sleep(0.25)


def _page_state(page: Any) -> str:
    """The run page's status, its last control or subscription error and its connection."""
    return str(
        page.evaluate(
            "() => [window.ytmaker.status, document.getElementById('control-result').textContent,"
            " document.getElementById('connection').dataset.state].join(' | ')"
        )
    )


def _events(page: Any) -> list[int]:
    offsets = page.eval_on_selector_all("#events li", "items => items.map(li => li.dataset.offset)")
    return [int(x) for x in offsets]


def _control(system: System, task_id: str, action: str) -> None:
    """Pause or resume the run through the gateway itself, not the page's proxy."""
    answer = httpx.post(f"{system.base}/api/v1/tasks/{task_id}/{action}", timeout=10)
    assert answer.status_code == 202, answer.text


def _status(system: System, task_id: str) -> str:
    return str(httpx.get(f"{system.base}/api/v1/progress/{task_id}", timeout=10).json()["status"])


def _history(system: System, task_id: str) -> list[int]:
    url = f"{system.base}/api/v1/progress/{task_id}/history/db?limit=10000"
    return [item["offset"] for item in httpx.get(url, timeout=10).json()["items"]]


FINISHED: dict[str, str] = {}


def test_a_run_through_a_network_cut_and_a_gateway_restart(
    system: System, proxy: TcpProxy, browser: Any
) -> None:
    page = browser.new_page(viewport={"width": 1100, "height": 1500})
    page.goto(proxy.base + "/")
    page.fill("input[name=title]", "How tides work")
    page.fill("input[name=segments]", "1")
    page.fill("input[name=target_length_seconds]", "10")
    page.click("#start")
    page.wait_for_url("**/projects/*", timeout=15_000)
    task_id = page.evaluate("window.ytmaker.taskId")
    assert task_id

    _poll(lambda: len(_events(page)) >= 3, 120, "the first updates on the page", system)
    # Pauses hold the run mid-run while the network and the gateway are cut, however fast this
    # machine makes a video: a paused run finishes the step in hand and starts nothing else.
    _control(system, task_id, "pause")
    page.wait_for_selector("#status[data-status=paused]", timeout=60_000)
    _poll(lambda: _status(system, task_id) == "paused", 60, "the run paused", system)

    # The network cut: the run goes on while the page is away (resumed, then paused again
    # behind its back); once back it must get exactly what it missed.
    seen = len(_events(page))
    assert proxy.cut(refuse_s=30) >= 1, "the network cut closed the page's socket"
    page.wait_for_selector("#connection[data-state=reconnecting]", timeout=15_000)
    _control(system, task_id, "resume")
    _poll(lambda: _status(system, task_id) != "paused", 60, "the run resumed", system)
    _poll(lambda: len(_history(system, task_id)) > seen + 1, 120, "updates missed", system)
    _control(system, task_id, "pause")
    _poll(lambda: _status(system, task_id) == "paused", 60, "the run paused again", system)
    proxy.cut()  # connections are let in again
    page.wait_for_selector("#connection[data-state=connected]", timeout=30_000)
    _poll(lambda: _history(system, task_id) == _events(page), 30, "what was missed", system)
    assert page.evaluate("window.ytmaker.status") == "paused", _page_state(page)

    system.kill("gateway")  # SIGKILL mid-run, then the same port again
    page.wait_for_selector("#connection[data-state=reconnecting]", timeout=15_000)
    system.start("gateway")
    system.wait_ready(system.base)
    page.wait_for_selector("#connection[data-state=connected]", timeout=30_000)
    page.click("#resume")

    _poll(
        lambda: page.text_content("#status") in ("completed", "failed", "cancelled"),
        300,
        "the run to finish",
        system,
    )
    assert page.text_content("#status") == "completed", system.log_tails()
    assert page.text_content("#overall-text") == "100 %"
    page.wait_for_selector("#connection[data-state=connected]", timeout=30_000)

    # The page's event list is the stored history: same offsets, once each, in order.
    _poll(lambda: _history(system, task_id) == _events(page), 30, "page == history", system)
    seen_offsets = _events(page)
    assert len(seen_offsets) == len(set(seen_offsets)) and seen_offsets == sorted(seen_offsets)

    # The timeline: every stage has a finished bar, in the pipeline's order.
    rows = page.eval_on_selector_all(
        ".tl-row",
        "rows => rows.map(r => ({stage: r.dataset.stage, bars: [...r.querySelectorAll('.tl-bar')]"
        ".map(b => ({status: b.dataset.status, left: parseFloat(b.style.left),"
        " width: parseFloat(b.style.width)}))}))",
    )
    assert [r["stage"] for r in rows] == list(STAGES)
    for row in rows:
        assert row["bars"], f"{row['stage']} has a bar"
        assert row["bars"][-1]["status"] in ("completed", "skipped"), row
    left = {r["stage"]: r["bars"][0]["left"] for r in rows}
    assert left["script"] < left["images"] < left["render"] < left["upload"]

    # The video plays in the page; the thumbnail and the script show.
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
    page.wait_for_selector("#script li", timeout=15_000)
    assert page.eval_on_selector_all("#script li", "items => items.length") == 1
    for element in ("video", "thumbnail"):  # links with a grant, never a token (0134)
        src = page.evaluate(f"document.getElementById('{element}').src")
        assert f"/{task_id}/{element}?grant=" in src and "token=" not in src, src

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "live-page-run.png"), full_page=True)
    page.locator("#timeline").screenshot(path=str(ARTIFACTS / "live-page-timeline.png"))
    FINISHED["task_id"] = task_id
    FINISHED["project_id"] = page.evaluate("window.ytmaker.projectId")
    page.close()


def test_my_runs_lists_and_filters_the_runs(system: System, proxy: TcpProxy, browser: Any) -> None:
    if not FINISHED:
        pytest.fail("needs the finished run of the previous test")
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    page.goto(proxy.base + "/")
    row = f"#runs-body tr[data-task='{FINISHED['task_id']}']"
    page.wait_for_selector(row, timeout=15_000)
    assert page.text_content(f"{row} .badge") == "completed"
    assert page.text_content(f"{row} td:nth-child(3) small") == "100 %"
    assert page.text_content(f"{row} td:nth-child(4)").endswith("ago")
    assert page.get_attribute(f"{row} a", "href") == (
        f"/projects/{FINISHED['project_id']}?task={FINISHED['task_id']}"
    )
    page.fill("#runs-filter", "no such title")
    page.wait_for_selector(row, state="detached", timeout=5_000)
    page.fill("#runs-filter", "tides")
    page.wait_for_selector(row, timeout=5_000)
    page.select_option("#runs-status", "failed")
    page.wait_for_selector(row, state="detached", timeout=10_000)
    page.select_option("#runs-status", "completed")
    page.wait_for_selector(row, timeout=10_000)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "live-page-runs.png"), full_page=True)
    page.close()


def test_run_again_pause_resume_cancel(system: System, proxy: TcpProxy, browser: Any) -> None:
    if not FINISHED:
        pytest.fail("needs the finished run of the first test")
    page = browser.new_page(viewport={"width": 1100, "height": 1200})
    page.goto(f"{proxy.base}/projects/{FINISHED['project_id']}?task={FINISHED['task_id']}")
    page.wait_for_selector("#rerun:not([hidden])", timeout=15_000)
    page.click("#rerun")
    page.wait_for_function(
        f"() => !location.search.includes('{FINISHED['task_id']}')", timeout=15_000
    )
    _poll(
        lambda: page.evaluate("window.ytmaker.status") in ("queued", "running"),
        30,
        "the new run queued or running on the page",
        system,
        seen=lambda: _page_state(page),
    )
    page.wait_for_selector("#pause:not([disabled])", timeout=30_000)
    page.click("#pause")
    page.wait_for_selector("#status[data-status=paused]", timeout=60_000)
    page.click("#resume")
    page.wait_for_selector("#status[data-status=running]", timeout=60_000)
    page.click("#cancel")
    page.wait_for_selector("#status[data-status=cancelled]", timeout=60_000)
    assert page.is_visible("#rerun")
    page.close()

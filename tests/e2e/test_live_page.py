"""The live page (on the TypeScript SDK's browser build) in real headless Chromium against the
whole running system, through a TCP proxy that can cut the network:

- a run from the form to the finished video: a network cut (the run goes on meanwhile) and a
  gateway SIGKILL + restart mid-run, held there by pauses; the page's event list equals the
  stored history (no gap, no duplicate); the video plays, the thumbnail and the script show;
  the stage timeline has a finished bar per stage;
- my runs: the run is listed with its status, progress and age, and the filters work;
- the controls: run again, pause, resume, cancel;
- the artifact links (a gateway with 10 s links): renewed before they expire without a reload,
  the video kept where it was, paused or playing; renewed at once when the page's timers came
  late (a sleeping laptop) and the video fails or the download is clicked; an expired token
  gets the sign-in prompt.

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
from ytmaker_gateway.auth import TokenConfig, mint_token

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


@pytest.fixture(scope="module")
def short_links(system: System) -> None:
    """The gateway again, with links of 10 s and no leeway on expiry, so that links expire
    while a test watches: for the last tests of this module."""
    system.env.update(YTMAKER_ARTIFACT_LINK_TTL_S="10", YTMAKER_JWT_LEEWAY_S="0")
    system.kill("gateway")
    system.start("gateway")
    system.wait_ready(system.base)


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


def _result_page(page: Any, proxy: TcpProxy, query: str = "") -> Any:
    """`page` on the finished run, once its video and thumbnail have loaded."""
    if not FINISHED:
        pytest.fail("needs the finished run of the first test")
    page.goto(f"{proxy.base}/projects/{FINISHED['project_id']}?task={FINISHED['task_id']}{query}")
    page.wait_for_function(
        "() => document.getElementById('video').readyState >= 1"
        " && document.getElementById('thumbnail').naturalWidth > 0",
        timeout=30_000,
    )
    page.evaluate("window.notReloaded = true")
    return page


def _src(page: Any, element: str) -> str:
    return str(page.eval_on_selector(f"#{element}", "e => e.src || e.href"))


def _wait_expired(system: System, url: str) -> None:
    """Until the gateway refuses `url`'s grant (401): the link has really expired."""
    _poll(lambda: httpx.get(url, timeout=10).status_code == 401, 30, "the link expired", system)


def _assert_works(url: str, old: str) -> None:
    assert "grant=" in url and "token=" not in url and url != old, (url, old)
    answer = httpx.get(url, headers={"Range": "bytes=0-99"}, timeout=10)
    assert answer.status_code == 206 and len(answer.content) == 100, answer.status_code


def test_artifact_links_are_renewed_before_they_expire(
    system: System, proxy: TcpProxy, browser: Any, short_links: None
) -> None:
    page = _result_page(browser.new_page(), proxy)
    video, thumbnail = _src(page, "video"), _src(page, "thumbnail")
    assert _src(page, "download") == video
    page.evaluate(
        "() => { const v = document.getElementById('video'); v.muted = true; v.currentTime = 3; }"
    )
    # Renewed a margin before expiry (10 s links): new URLs, the paused video still at 3 s.
    page.wait_for_function(
        "([video, thumbnail]) => { const v = document.getElementById('video');"
        " return v.src !== video && document.getElementById('thumbnail').src !== thumbnail"
        " && v.readyState >= 1 && v.paused && Math.abs(v.currentTime - 3) < 0.1; }",
        arg=[video, thumbnail],
        timeout=20_000,
    )
    renewed = _src(page, "video")
    assert _src(page, "download") == renewed
    _wait_expired(system, video)
    _assert_works(renewed, video)
    _assert_works(_src(page, "thumbnail"), thumbnail)
    assert page.evaluate("document.getElementById('thumbnail').naturalWidth") > 0
    assert page.evaluate("window.notReloaded"), "renewed without a reload"

    # Playing (at half speed): the next renewal keeps it playing, where it was.
    page.evaluate(
        "() => { const v = document.getElementById('video'); v.playbackRate = 0.5;"
        " return v.play(); }"
    )
    page.wait_for_function(
        "(renewed) => { const v = document.getElementById('video');"
        " return v.src !== renewed && v.readyState >= 2 && !v.paused && v.currentTime > 3.2"
        " && v.playbackRate === 0.5; }",
        arg=renewed,
        timeout=20_000,
    )
    _wait_expired(system, renewed)
    _assert_works(_src(page, "video"), renewed)
    assert page.evaluate("window.notReloaded"), "renewed without a reload"
    page.close()


def test_an_expired_link_is_renewed_when_the_timers_came_late(
    system: System, proxy: TcpProxy, browser: Any, short_links: None
) -> None:
    page = browser.new_page()
    page.clock.install()
    _result_page(page, proxy)
    # The page's clock stops: its renewals do not come, as on a laptop asleep, until its links
    # have really expired; then it wakes up, and nothing has renewed them yet.
    page.clock.pause_at(page.evaluate("Date.now()") + 100)
    video, thumbnail = _src(page, "video"), _src(page, "thumbnail")
    _wait_expired(system, video)
    page.clock.set_system_time(time.time())

    # They ask the gateway with the expired grant (a query of their own: not from the cache,
    # which holds the whole of this short video), which refuses it. (The links they were given:
    # had a load of the video's come after the expiry while the clock stood, the page would
    # have renewed on its error already.)
    page.evaluate(
        "(srcs) => { for (const [id, src] of Object.entries(srcs))"
        " document.getElementById(id).src = src + '&again=1'; }",
        {"video": video, "thumbnail": thumbnail},
    )
    page.wait_for_function(
        "([video, thumbnail]) => { const v = document.getElementById('video');"
        " const t = document.getElementById('thumbnail');"
        " return !v.src.endsWith('&again=1') && v.src !== video && v.readyState >= 1"
        " && !t.src.endsWith('&again=1') && t.src !== thumbnail && t.naturalWidth > 0; }",
        arg=[video, thumbnail],
        polling=100,  # the page's requestAnimationFrame stopped with its clock
        timeout=20_000,
    )
    renewed = _src(page, "video")
    _assert_works(renewed, video)
    _assert_works(_src(page, "thumbnail"), thumbnail)

    _wait_expired(system, renewed)
    page.clock.set_system_time(time.time())
    with page.expect_download(timeout=20_000) as started:
        page.click("#download")
    download = started.value
    assert download.failure() is None
    _assert_works(download.url, renewed)
    assert Path(download.path()).stat().st_size > 1000
    assert page.evaluate("window.notReloaded"), "renewed without a reload"
    page.close()


def test_a_failed_load_is_tried_again_on_the_renewed_link_even_when_it_is_the_same(
    system: System, proxy: TcpProxy, browser: Any, short_links: None
) -> None:
    """Asked again within its grant's second (or without a signing secret) the gateway gives
    the link the page has: the element that failed loads it all the same."""
    page = _result_page(browser.new_page(), proxy)
    thumbnail = _src(page, "thumbnail")
    cut = lambda url: url.endswith("&again=1")  # noqa: E731
    page.route(cut, lambda route: route.abort("connectionreset"))  # a load cut short

    def the_same_link(route: Any) -> None:
        answer = route.fetch().json()
        route.fulfill(json={**answer, "url": thumbnail.removeprefix(proxy.base)})

    page.route("**/thumbnail/link", the_same_link)
    page.evaluate(
        "(src) => { document.getElementById('thumbnail').src = src + '&again=1'; }", thumbnail
    )
    page.wait_for_function(
        "(src) => { const t = document.getElementById('thumbnail');"
        " return t.src === src && t.complete && t.naturalWidth > 0; }",
        arg=thumbnail,
        timeout=15_000,
    )
    page.close()


def test_a_token_in_the_addresss_fragment_is_kept_and_sent_to_no_server(
    system: System, proxy: TcpProxy, browser: Any
) -> None:
    config = TokenConfig(secret=system.env["YTMAKER_JWT_SECRET"])
    token = mint_token(config, "dev")
    page = browser.new_page()
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    with page.expect_response(lambda r: "/api/v1/runs" in r.url, timeout=15_000) as runs:
        page.goto(f"{proxy.base}/#token={token}")
    assert runs.value.status == 200  # my runs, asked with the token
    assert runs.value.request.headers["authorization"] == f"Bearer {token}"
    assert page.evaluate("localStorage.getItem('ytmaker.token')") == token
    assert page.url == f"{proxy.base}/"  # out of the address bar
    assert requested and not [url for url in requested if token in url]
    page.close()


def test_an_expired_token_gets_the_sign_in_prompt(
    system: System, proxy: TcpProxy, browser: Any, short_links: None
) -> None:
    config = TokenConfig(secret=system.env["YTMAKER_JWT_SECRET"])
    page = browser.new_page()
    page.goto(f"{proxy.base}/?token={mint_token(config, 'dev')}")  # kept in localStorage
    _result_page(page, proxy)
    page.wait_for_selector("#connection[data-state=connected]", timeout=15_000)
    page.evaluate(
        "() => { const v = document.getElementById('video'); v.muted = true; v.currentTime = 3; }"
    )
    assert page.is_hidden("#signin")
    # The token expires (the page reads it from localStorage each time); the live connection,
    # opened before, stays up: what renews a link must say so on its own.
    expired = mint_token(config, "dev", ttl_s=-60)
    page.evaluate("(token) => localStorage.setItem('ytmaker.token', token)", expired)
    page.wait_for_selector("#signin", state="visible", timeout=20_000)
    assert "unauthorized" in (page.get_attribute("#thumbnail", "title") or "")
    assert page.get_attribute("#connection", "data-state") == "connected"
    video, thumbnail = _src(page, "video"), _src(page, "thumbnail")

    # Signed in again, the page goes on where it was: new links, the video still at 3 s.
    page.fill("#signin input[name=token]", mint_token(config, "dev"))
    page.click("#signin button")
    page.wait_for_function(
        "([video, thumbnail]) => { const v = document.getElementById('video');"
        " const t = document.getElementById('thumbnail');"
        " return v.src !== video && t.src !== thumbnail && t.naturalWidth > 0"
        " && !t.title && v.readyState >= 1 && Math.abs(v.currentTime - 3) < 0.1; }",
        arg=[video, thumbnail],
        timeout=15_000,
    )
    assert page.is_hidden("#signin")
    assert page.evaluate("window.notReloaded"), "signed in again without a reload"
    _assert_works(_src(page, "video"), video)
    page.close()


def test_my_runs_come_back_at_once_after_signing_in_again(
    system: System, proxy: TcpProxy, browser: Any, short_links: None
) -> None:
    config = TokenConfig(secret=system.env["YTMAKER_JWT_SECRET"])
    page = browser.new_page()
    # The page's clock stands still from the start: the list's timer never refreshes it.
    page.clock.install()
    page.clock.pause_at(int(time.time() * 1000) + 2000)
    page.goto(f"{proxy.base}/#token={mint_token(config, 'dev', ttl_s=-60)}")
    page.wait_for_function(
        "() => !document.getElementById('signin').hidden"
        " && document.getElementById('runs-error').textContent.includes('unauthorized')",
        polling=100,  # the page's requestAnimationFrame stopped with its clock
        timeout=15_000,
    )
    token = mint_token(config, "dev")
    page.fill("#signin input[name=token]", token)
    with page.expect_response(lambda r: "/api/v1/runs" in r.url and r.ok, timeout=10_000) as runs:
        page.click("#signin button")
    assert runs.value.request.headers["authorization"] == f"Bearer {token}"
    page.wait_for_function(
        "() => document.getElementById('runs-error').textContent === ''",
        polling=100,  # the page's requestAnimationFrame stopped with its clock
        timeout=10_000,
    )
    assert page.is_hidden("#signin")
    page.close()


def test_a_refusal_answered_after_signing_in_is_tried_again_not_asked_again(
    system: System, proxy: TcpProxy, browser: Any
) -> None:
    """A request sent with the old token and refused (401) after the user signed in is sent
    again with the new token; the prompt does not come back for a token already replaced."""
    config = TokenConfig(secret=system.env["YTMAKER_JWT_SECRET"])
    expired = mint_token(config, "dev", ttl_s=-60)
    page = browser.new_page()
    page.clock.install()  # the list's timer never refreshes it: each request is the test's
    page.clock.pause_at(int(time.time() * 1000) + 2000)
    page.goto(f"{proxy.base}/#token={expired}")
    page.wait_for_function(
        "() => !document.getElementById('signin').hidden", polling=100, timeout=15_000
    )
    held: list[Any] = []

    def hold_the_old_tokens(route: Any) -> None:  # answered once the user has signed in
        if route.request.headers.get("authorization") == f"Bearer {expired}":
            held.append(route)
        else:
            route.continue_()

    page.route("**/api/v1/runs*", hold_the_old_tokens)
    answers: list[Any] = []
    page.on("response", lambda r: "/api/v1/runs" in r.url and answers.append(r))
    page.evaluate("() => { window.ytmaker.runs.load(); }")  # sent with the old token
    _poll(lambda: page.evaluate("0") or held, 10, "the old token's request held", system)
    token = mint_token(config, "dev")
    page.fill("#signin input[name=token]", token)
    page.click("#signin button")  # the first refusal's retry goes out with the new token
    _poll(lambda: page.evaluate("0") or answers, 10, "the first refusal's retry", system)
    assert [a.status for a in answers] == [200]
    answers.clear()
    held[0].continue_()  # refused now, after the sign-in
    _poll(lambda: page.evaluate("0") or len(answers) >= 2, 10, "the refusal, retried", system)
    refusal, retry = answers
    assert refusal.status == 401 and retry.status == 200
    assert retry.request.headers["authorization"] == f"Bearer {token}"
    assert page.is_hidden("#signin")
    page.close()


def test_a_token_expiring_on_the_live_connection_gets_the_sign_in_prompt(
    system: System, proxy: TcpProxy, browser: Any, short_links: None
) -> None:
    """The gateway closes a connection whose token expires with 4401 (docs/protocol.md); the
    page does not reconnect on it but asks for a new token, and connects again once given one.
    The links' own refusals are kept from the prompt here, so that only the socket's close can
    show it."""
    config = TokenConfig(secret=system.env["YTMAKER_JWT_SECRET"])
    page = browser.new_page()
    page.goto(f"{proxy.base}/?token={mint_token(config, 'dev', ttl_s=15)}")
    _result_page(page, proxy)
    page.wait_for_selector("#connection[data-state=connected]", timeout=15_000)
    page.evaluate("window.ytmaker.refused = (err) => err?.status === 401")  # links: no prompt
    assert page.is_hidden("#signin")
    page.wait_for_selector("#signin", state="visible", timeout=30_000)
    assert page.get_attribute("#connection", "data-state") == "failed"
    assert "4401" in page.inner_text("#connection")
    events = page.inner_text("#event-count")

    # Signed in again, the run's stream resumes after the last update shown: no gap, no repeat.
    page.fill("#signin input[name=token]", mint_token(config, "dev"))
    page.click("#signin button")
    page.wait_for_selector("#connection[data-state=connected]", timeout=15_000)
    assert page.is_hidden("#signin") and page.is_hidden("#gap")
    assert page.inner_text("#event-count") == events
    assert page.evaluate("window.notReloaded")
    page.close()


def test_a_connection_refused_after_signing_in_connects_again_without_asking(
    system: System, proxy: TcpProxy, browser: Any
) -> None:
    """The user signed in again while the live connection still ran on the old token; when the
    gateway closes it at that token's expiry (4401), the page connects again with the new token
    and resumes, without asking for one it already has."""
    config = TokenConfig(secret=system.env["YTMAKER_JWT_SECRET"])
    page = browser.new_page()
    page.goto(f"{proxy.base}/?token={mint_token(config, 'dev', ttl_s=15)}")
    _result_page(page, proxy)
    page.wait_for_selector("#connection[data-state=connected]", timeout=15_000)
    page.evaluate(
        "() => { window.states = [];"
        " window.ytmaker.client.onConnectionState((s, d) => window.states.push([s, d?.code])); }"
    )
    events = page.inner_text("#event-count")
    page.evaluate("window.ytmaker.signIn()")  # as a refused request would ask
    page.fill("#signin input[name=token]", mint_token(config, "dev"))
    page.click("#signin button")
    # The connection, opened with the old token, is closed at its expiry and opened again.
    page.wait_for_function(
        "() => { const s = window.states; const i = s.findIndex(([state, code]) =>"
        " state === 'failed' && code === 4401);"
        " return i >= 0 && s.slice(i).some(([state]) => state === 'connected'); }",
        timeout=30_000,
    )
    assert page.is_hidden("#signin") and page.is_hidden("#gap")
    assert page.inner_text("#event-count") == events
    assert page.evaluate("window.notReloaded")
    page.close()

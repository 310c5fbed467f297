"""The Gemini adapter (google-genai) against the local Gemini emulator, failures included."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.emulators.base import Drip, EmulatorServer, Fail, Flood, Hang, Truncate
from tests.emulators.gemini import GeminiEmulator, scripted_answer
from tests.support.forward_proxy import ForwardProxy, clear_proxy_settings
from tests.support.wait import wait_until
from ytmaker_script.adapters.gemini import GeminiWriter, script_from_answer
from ytmaker_shared.events import ErrorInfo, ProjectSettings, TaskRequestedPayload
from ytmaker_shared.stageworker import PermanentError, TransientError

REQUEST = TaskRequestedPayload(
    title="Event logs",
    content="Logs keep events in order. Consumers read them at their own pace. Offsets mark "
    "progress.",
    settings=ProjectSettings(segments=3),
)


@pytest.fixture
async def gemini() -> AsyncIterator[tuple[GeminiEmulator, EmulatorServer]]:
    emulator = GeminiEmulator()
    async with emulator.server() as server:
        yield emulator, server


def writer(
    server: EmulatorServer, key: str = "test-gemini-key", timeout: float = 10, **bounds: Any
) -> GeminiWriter:
    return GeminiWriter(key, "gemini-2.5-flash", base_url=server.url, timeout_s=timeout, **bounds)


async def test_structured_output_is_asked_and_parsed(
    gemini: tuple[GeminiEmulator, EmulatorServer],
) -> None:
    emulator, server = gemini
    script = await writer(server).write(REQUEST)
    assert len(script.segments) == 3 and script.title == "Event logs"
    call = emulator.calls[-1]
    assert call["model"] == "gemini-2.5-flash"
    assert call["config"]["responseMimeType"] == "application/json"
    assert "segments" in call["config"]["responseSchema"]["properties"]
    assert "Logs keep events in order." in call["prompt"]


async def test_the_model_is_asked_through_the_proxy_the_environment_names(
    gemini: tuple[GeminiEmulator, EmulatorServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """google-genai is given the stage's bounded client, which goes out through `HTTP(S)_PROXY`
    as httpx's own clients do (a site whose egress is a proxy)."""
    emulator, server = gemini
    clear_proxy_settings(monkeypatch)
    async with ForwardProxy() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        script = await writer(server).write(REQUEST)
    assert len(script.segments) == 3 and len(emulator.calls) == 1
    assert proxy.seen and all(seen.startswith(f"POST {server.url}/") for seen in proxy.seen)


@pytest.mark.parametrize(
    ("status", "code"), [(429, "gemini_rate_limited"), (503, "gemini_unavailable")]
)
async def test_rate_limits_and_5xx_are_transient(
    gemini: tuple[GeminiEmulator, EmulatorServer], status: int, code: str
) -> None:
    emulator, server = gemini
    emulator.faults.inject("generate", Fail(status))
    with pytest.raises(TransientError) as caught:
        await writer(server).write(REQUEST)
    assert caught.value.code == code
    assert len((await writer(server).write(REQUEST)).segments) == 3  # the next call works


async def test_bad_key_is_permanent(gemini: tuple[GeminiEmulator, EmulatorServer]) -> None:
    _, server = gemini
    with pytest.raises(PermanentError) as caught:
        await writer(server, key="wrong").write(REQUEST)
    assert caught.value.code == "gemini_rejected" and "API key not valid" in caught.value.message


async def test_truncated_json_is_transient_with_a_clear_message(
    gemini: tuple[GeminiEmulator, EmulatorServer],
) -> None:
    emulator, server = gemini
    emulator.faults.inject("generate", Truncate())
    with pytest.raises(TransientError) as caught:
        await writer(server).write(REQUEST)
    assert caught.value.code == "invalid_model_output"
    assert "truncated" in caught.value.message and "MAX_TOKENS" in caught.value.message


async def test_timeout_is_transient(gemini: tuple[GeminiEmulator, EmulatorServer]) -> None:
    emulator, server = gemini
    emulator.faults.inject("generate", Hang(3))
    with pytest.raises(TransientError) as caught:
        await writer(server, timeout=0.5).write(REQUEST)
    assert caught.value.code in {"gemini_timeout", "gemini_unavailable"}


def test_schema_violations_are_reported() -> None:
    with pytest.raises(TransientError, match="does not validate"):
        script_from_answer('{"title": "t", "description": "d", "tags": [], "segments": []}')
    with pytest.raises(TransientError, match="no text"):
        script_from_answer(None)


def json_values() -> st.SearchStrategy[object]:
    leaves = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=50)
    return st.recursive(
        leaves,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
        max_leaves=20,
    )


def near_scripts() -> st.SearchStrategy[str]:
    """A valid answer with one field replaced by any JSON value."""
    good = json.loads(scripted_answer("exactly 2 segments\n\nOne. Two.", None))
    segment_fields = st.sampled_from(sorted(good["segments"][0]))

    def replace(field: str | None, value: object, segment_field: str) -> str:
        answer = json.loads(json.dumps(good))
        if field is None:
            answer["segments"][0][segment_field] = value
        else:
            answer[field] = value
        return json.dumps(answer)

    return st.builds(
        replace,
        st.sampled_from([None, "title", "description", "tags", "segments"]),
        json_values(),
        segment_fields,
    )


@settings(max_examples=300, deadline=None)
@given(
    text=near_scripts()
    | st.text(max_size=200)
    | st.sampled_from(
        [
            '{"segments": ' + "1" * 5000 + "}",  # beyond Python's integer digits
            "[" * 5000 + "]" * 5000,  # nested deeper than the parser recurses
            '{"title": "t", "description": "d", "segments": 5}',
            '{"title": "t", "description": "d", "segments": [{"narration": "'
            + "x" * 100_000
            + '", "caption": "c", "image_prompt": "p", "duration_seconds": 5}]}',
        ]
    )
)
def test_any_model_answer_is_a_script_or_a_retryable_error_the_events_can_carry(
    text: str,
) -> None:
    """Whatever the model writes: a valid Script, or `invalid_model_output` whose message fits
    a stage.failed / stage.retrying event (decision 0011)."""
    try:
        script_from_answer(text, finish="STOP")
    except TransientError as exc:
        assert exc.code == "invalid_model_output"
        ErrorInfo(code=exc.code, message=exc.message, details=exc.details)
        assert "x" * 200 not in exc.message  # the model's text is not echoed whole


async def test_rate_limit_says_when_to_come_back(
    gemini: tuple[GeminiEmulator, EmulatorServer],
) -> None:
    """A 429's Retry-After / RetryInfo is the least delay before the next attempt (0010)."""
    emulator, server = gemini
    emulator.faults.inject("generate", Fail(429, retry_after=7))
    with pytest.raises(TransientError) as caught:
        await writer(server).write(REQUEST)
    assert caught.value.code == "gemini_rate_limited" and caught.value.retry_after_s == 7


async def test_the_key_does_not_follow_a_redirect_to_another_host() -> None:
    """A Gemini endpoint that redirects elsewhere does not get the key sent there."""
    seen: list[str | None] = []
    elsewhere = FastAPI()

    @elsewhere.post("/{path:path}")
    async def record(request: Request) -> Response:
        seen.append(request.headers.get("x-goog-api-key"))
        return JSONResponse({"error": {"code": 404, "message": "no", "status": "NOT_FOUND"}}, 404)

    async with EmulatorServer(elsewhere) as other:
        redirecting = FastAPI()

        @redirecting.post("/{path:path}")
        async def redirect(path: str) -> Response:
            return RedirectResponse(f"{other.url}/{path}", status_code=307)

        async with EmulatorServer(redirecting) as server:
            with pytest.raises(PermanentError):
                await writer(server).write(REQUEST)
    assert seen == []


async def test_a_huge_error_message_fits_the_failure_event(
    gemini: tuple[GeminiEmulator, EmulatorServer],
) -> None:
    emulator, server = gemini
    emulator.app.router.routes.clear()

    @emulator.app.post("/v1beta/models/{model_action}")
    async def huge(model_action: str) -> Response:
        return JSONResponse({"error": {"code": 400, "message": "x" * 100_000}}, 400)

    with pytest.raises(PermanentError) as caught:
        await writer(server).write(REQUEST)
    ErrorInfo(code=caught.value.code, message=caught.value.message, details=caught.value.details)


#: Far past the answer's bound (8 MiB by default), small enough to be read whole without one.
FLOOD = 64 * 2**20


async def test_an_answer_past_the_bound_is_cut_short_as_a_transient_error(
    gemini: tuple[GeminiEmulator, EmulatorServer],
) -> None:
    """The SDK reads Gemini's JSON answer whole: a broken or hostile endpoint could fill the
    stage's memory. The read stops at the bound (the default one here): a retryable
    `gemini_answer_too_large`, and the next call works."""
    emulator, server = gemini
    emulator.faults.inject("generate", Flood(FLOOD))
    gemini_writer = writer(server)
    try:
        async with asyncio.timeout(30):
            with pytest.raises(TransientError) as caught:
                await gemini_writer.write(REQUEST)
        assert caught.value.code == "gemini_answer_too_large", caught.value
        await wait_until(lambda: emulator.streamed[-1].ended, timeout=10, what="the flood's end")
        assert not emulator.streamed[-1].whole, "the whole answer was read"
        ErrorInfo(code=caught.value.code, message=caught.value.message)
        assert len((await gemini_writer.write(REQUEST)).segments) == 3
    finally:
        await gemini_writer.aclose()


@pytest.mark.parametrize(
    ("timeout", "bounds"),
    [(10.0, {"answer_within_s": 0.5}), (0.5, {})],
    ids=["answer_within_s", "the-timeout-by-default"],
)
async def test_an_answer_dripping_past_its_total_time_is_a_timeout(
    gemini: tuple[GeminiEmulator, EmulatorServer], timeout: float, bounds: dict[str, Any]
) -> None:
    """httpx's timeouts are per read: a byte every 50 ms keeps each read inside them and held
    the call until the stage's own time limit (not retried). The whole answer must come within
    `answer_within_s` of the request (the per-read timeout unless told otherwise)."""
    emulator, server = gemini
    emulator.faults.inject("generate", Drip(every_s=0.05))
    gemini_writer = writer(server, timeout=timeout, **bounds)
    try:
        started = time.monotonic()
        async with asyncio.timeout(30):
            with pytest.raises(TransientError) as caught:
                await gemini_writer.write(REQUEST)
        elapsed = time.monotonic() - started
        assert caught.value.code == "gemini_timeout", caught.value
        assert elapsed < 3.0, f"cut after {elapsed:.1f}s"
        await wait_until(lambda: emulator.streamed[-1].ended, timeout=10, what="the drip's end")
        assert emulator.streamed[-1].sent > 1  # bytes did come, each well inside a read timeout
    finally:
        await gemini_writer.aclose()


@pytest.mark.parametrize(
    "body",
    [
        b'{"candidates": [',  # cut short
        b"[1, 2]",  # JSON, not a response
        b'{"candidates": "none"}',  # a response of another shape
        b'{"candidates": [{"content": {"parts": [{"text": 7}]}}]}',
        b"\xff\xfe not even text",
    ],
)
async def test_an_answer_that_is_not_a_response_is_a_retryable_error(body: bytes) -> None:
    """A 200 whose body is not the API's response (a front end's page, a cut answer) is
    neither a crash nor a script: the attempt fails with a retryable error naming Gemini."""
    odd = FastAPI()

    @odd.post("/{path:path}")
    async def answer(path: str) -> Response:
        return Response(body, media_type="application/json")

    async with EmulatorServer(odd) as server:
        with pytest.raises(TransientError) as caught:
            await writer(server).write(REQUEST)
    assert caught.value.code in {"gemini_bad_answer", "invalid_model_output"}
    assert len(ErrorInfo(code=caught.value.code, message=caught.value.message).message) <= 4000

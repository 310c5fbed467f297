"""Stability and D-ID adapters against their local emulators, failures included."""

from __future__ import annotations

import asyncio
import io
import logging
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from PIL import Image

from tests.emulators.base import EmulatorServer, Fail, Hang
from tests.emulators.did import DIDEmulator
from tests.emulators.stability import StabilityEmulator
from tests.support.forward_proxy import ForwardProxy, clear_proxy_settings
from tests.support.wait import wait_until
from ytmaker_assets.adapters.did import DIDAvatars
from ytmaker_assets.adapters.stability import StabilityImages, fit
from ytmaker_shared.artifacts import MemoryArtifactStore
from ytmaker_shared.events import ErrorInfo, TaskRequested, TaskRequestedPayload
from ytmaker_shared.script import Script, Segment
from ytmaker_shared.stages import Stage
from ytmaker_shared.stageworker import JobContext, PermanentError, ProgressReporter, TransientError

SEGMENT = Segment(
    index=1, narration="Logs keep order.", caption="Order", image_prompt="a log", duration_seconds=5
)
SCRIPT = Script(title="T", description="D", segments=[SEGMENT])


def context() -> JobContext:
    async def emit(_: object) -> None:
        return None

    event = TaskRequested(
        task_id="t1",
        project_id="p1",
        owner="o",
        producer="test",
        correlation_id="c",
        payload=TaskRequestedPayload(title="T", content="C."),
    )
    return JobContext(
        event=event,
        stage=Stage.AVATARS,
        attempt=1,
        store=MemoryArtifactStore("adapters"),
        progress=ProgressReporter(emit, interval_s=0),
        scratch=Path("/tmp"),
        log=logging.LoggerAdapter(logging.getLogger("test")),
    )


async def test_stability_image_is_fitted_to_720p() -> None:
    emulator = StabilityEmulator()
    async with emulator.server() as server:
        images = StabilityImages(emulator.api_key, base_url=server.url)
        data, content_type, ext = await images.make(SCRIPT, SEGMENT, "p1")
    assert Image.open(io.BytesIO(data)).size == (1280, 720)
    assert content_type == "image/png" and ext == "png" and emulator.prompts == ["a log"]


@pytest.mark.parametrize(
    ("fault", "kind", "code"),
    [
        (Fail(429, retry_after=2), TransientError, "stability_rate_limited"),
        (Fail(500), TransientError, "stability_unavailable"),
        (Fail(403), PermanentError, "stability_rejected"),
        (Hang(2), TransientError, "stability_timeout"),
    ],
)
async def test_stability_failures(fault: Fail | Hang, kind: type, code: str) -> None:
    emulator = StabilityEmulator()
    emulator.faults.inject("generate", fault)
    async with emulator.server() as server:
        images = StabilityImages(emulator.api_key, base_url=server.url, timeout_s=0.5)
        with pytest.raises(kind) as caught:
            await images.make(SCRIPT, SEGMENT, "p1")
    assert caught.value.code == code
    if isinstance(fault, Fail) and fault.retry_after:
        assert caught.value.retry_after_s == 2


async def test_stability_bad_key_is_permanent() -> None:
    async with StabilityEmulator().server() as server:
        with pytest.raises(PermanentError, match="unauthorized"):
            await StabilityImages("nope", base_url=server.url).make(SCRIPT, SEGMENT, "p1")


async def test_did_talk_is_created_polled_and_fetched() -> None:
    emulator = DIDEmulator(polls_to_done=3)
    async with emulator.server() as server:
        avatars = DIDAvatars(
            emulator.api_key, base_url=server.url, source_url="http://x/face.jpg", poll_interval_s=0
        )
        data, content_type = await avatars.clip(context(), SEGMENT)
    assert data == emulator.clip and content_type == "video/mp4"
    assert next(iter(emulator.talks.values()))["polls"] == 3


async def test_both_services_are_reached_through_the_proxy_the_environment_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A site whose egress is a proxy sets `HTTP(S)_PROXY`: every call of either adapter goes
    through it (a client given its transport would have ignored it)."""
    stability, did = StabilityEmulator(), DIDEmulator(polls_to_done=2)
    clear_proxy_settings(monkeypatch)
    async with ForwardProxy() as proxy, stability.server() as images, did.server() as talks:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        await StabilityImages(stability.api_key, base_url=images.url).make(SCRIPT, SEGMENT, "p1")
        avatars = DIDAvatars(
            did.api_key, base_url=talks.url, source_url="http://x/face.jpg", poll_interval_s=0
        )
        clip, _ = await avatars.clip(context(), SEGMENT)
    assert clip == did.clip and stability.prompts == ["a log"]
    reached = {seen.split(" ")[1].split("/")[2] for seen in proxy.seen}
    assert reached == {images.url.removeprefix("http://"), talks.url.removeprefix("http://")}
    assert len(proxy.seen) >= 4  # the image; the talk made, polled twice, fetched


async def test_did_key_goes_to_the_api_host_only() -> None:
    emulator = DIDEmulator(polls_to_done=2)
    async with emulator.server() as api, emulator.server() as storage:
        emulator.result_base_url = storage.url  # another port: another origin
        avatars = DIDAvatars(
            emulator.api_key, base_url=api.url, source_url="http://x/face.jpg", poll_interval_s=0
        )
        data, _ = await avatars.clip(context(), SEGMENT)  # the API refuses calls without key
    assert data == emulator.clip
    assert emulator.result_authorizations == [None]


@pytest.mark.parametrize(
    ("talk_id", "result_url", "error"),
    [
        ("../../admin", None, TransientError),
        ("a/b?c=d", None, TransientError),
        ({"id": 1}, None, TransientError),
        (None, "file:///etc/passwd", PermanentError),
        (None, ["not", "a", "url"], PermanentError),
    ],
)
async def test_did_hostile_answers_are_refused(
    talk_id: object, result_url: object, error: type[Exception]
) -> None:
    emulator = DIDEmulator(polls_to_done=1)
    emulator.talk_id_override = talk_id
    emulator.result_url_override = result_url
    async with emulator.server() as server:
        avatars = DIDAvatars(
            emulator.api_key, base_url=server.url, source_url="u", poll_interval_s=0
        )
        with pytest.raises(error, match="d-id_bad_answer"):
            await avatars.clip(context(), SEGMENT)
    assert emulator.result_authorizations == []


async def test_did_failed_talk_is_permanent_and_5xx_transient() -> None:
    emulator = DIDEmulator()
    async with emulator.server() as server:
        avatars = DIDAvatars(
            emulator.api_key, base_url=server.url, source_url="u", poll_interval_s=0
        )
        emulator.faults.inject("create", Fail(503))
        with pytest.raises(TransientError):
            await avatars.clip(context(), SEGMENT)
        emulator.fail_talks = True
        with pytest.raises(PermanentError, match="FaceError"):
            await avatars.clip(context(), SEGMENT)


async def test_did_job_cancelled_while_its_talk_is_made_deletes_it() -> None:
    emulator = DIDEmulator(polls_to_done=10_000)
    emulator.create_answer_delay_s = 0.5
    async with emulator.server() as server:
        avatars = DIDAvatars(
            emulator.api_key, base_url=server.url, source_url="u", poll_interval_s=0.05
        )
        task = asyncio.create_task(avatars.clip(context(), SEGMENT))
        await wait_until(lambda: bool(emulator.talks), timeout=5)  # made, not answered yet
        made = list(emulator.talks)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await wait_until(lambda: len(emulator.deleted) == 1, timeout=5)
        assert emulator.deleted == made
        await avatars.aclose()


async def test_did_cancelled_job_deletes_its_talk() -> None:
    emulator = DIDEmulator(polls_to_done=10_000)
    async with emulator.server() as server:
        avatars = DIDAvatars(
            emulator.api_key, base_url=server.url, source_url="u", poll_interval_s=0.05
        )
        task = asyncio.create_task(avatars.clip(context(), SEGMENT))
        await wait_until(lambda: bool(emulator.talks), timeout=5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await wait_until(lambda: len(emulator.deleted) == 1, timeout=5)


def png(width: int, height: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (10, 20, 30)).save(buf, "PNG")
    return buf.getvalue()


@pytest.mark.parametrize(("width", "height"), [(1, 1000), (1000, 1), (1, 1)])
def test_an_image_of_any_shape_is_fitted_in_little_memory(width: int, height: int) -> None:
    """A sliver of an image (1×1000) must not be scaled up whole before the crop: that is
    6.5 GB. The fitting runs in a child limited to 2 GiB of address space."""
    script = (
        "import resource, sys, io\n"
        "resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))\n"
        "from PIL import Image\n"
        "from ytmaker_assets.adapters.stability import fit\n"
        "out = Image.open(io.BytesIO(fit(sys.stdin.buffer.read())))\n"
        "assert out.size == (1280, 720), out.size\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], input=png(width, height), capture_output=True, timeout=120
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]


def test_an_image_too_large_to_decode_is_refused() -> None:
    with pytest.raises(PermanentError, match="stability_bad_image"):
        fit(png(8000, 6000))  # 48 megapixels: far beyond what Stability makes


def answering(status: int, body: bytes, headers: dict[str, str] | None = None) -> FastAPI:
    app = FastAPI()

    @app.api_route("/{path:path}", methods=["GET", "POST", "DELETE"])
    async def answer(path: str) -> Response:
        return Response(body, status_code=status, headers=headers, media_type="application/json")

    return app


@pytest.mark.parametrize("body", [b"[]", b'"busy"', b"7", b'{"errors": 5}', b"null"])
async def test_stability_5xx_with_an_odd_body_is_still_retried(body: bytes) -> None:
    async with EmulatorServer(answering(503, body, {"retry-after": "3"})) as server:
        with pytest.raises(TransientError) as caught:
            await StabilityImages("k", base_url=server.url).make(SCRIPT, SEGMENT, "p1")
    assert caught.value.code == "stability_unavailable" and caught.value.retry_after_s == 3


@pytest.mark.parametrize("body", [b"[]", b'"busy"', b"7", b"null"])
async def test_did_5xx_with_an_odd_body_is_still_retried(body: bytes) -> None:
    async with EmulatorServer(answering(503, body)) as server:
        avatars = DIDAvatars("k", base_url=server.url, source_url="u", poll_interval_s=0)
        with pytest.raises(TransientError) as caught:
            await avatars.clip(context(), SEGMENT)
    assert caught.value.code == "d-id_unavailable"


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b'"created"', b"{"])
async def test_did_answer_that_is_not_a_talk_is_a_clear_error(body: bytes) -> None:
    async with EmulatorServer(answering(201, body)) as server:
        avatars = DIDAvatars("k", base_url=server.url, source_url="u", poll_interval_s=0)
        with pytest.raises(TransientError, match="d-id_bad_answer"):
            await avatars.clip(context(), SEGMENT)


async def test_did_redirect_is_not_taken_for_the_clip() -> None:
    """A 3xx is not a success: its body is not the clip (no redirect is followed)."""
    emulator = DIDEmulator(polls_to_done=1)
    async with (
        emulator.server() as api,
        EmulatorServer(
            answering(302, b"", {"location": "http://127.0.0.1:9/elsewhere.mp4"})
        ) as moved,
    ):
        emulator.result_base_url = moved.url
        avatars = DIDAvatars(emulator.api_key, base_url=api.url, source_url="u", poll_interval_s=0)
        with pytest.raises(PermanentError, match="d-id_bad_answer"):
            await avatars.clip(context(), SEGMENT)


@pytest.mark.parametrize(
    "error", ["a plain string", ["a", "list"], {"kind": "FaceError", "description": "x" * 100_000}]
)
async def test_did_failed_talk_of_any_shape_is_a_clear_permanent_error(error: object) -> None:
    emulator = DIDEmulator()
    emulator.fail_talks = True
    async with emulator.server() as server:
        app = emulator.app

        @app.middleware("http")
        async def odd_error(request: Request, call_next: Any) -> Response:
            response = await call_next(request)
            if request.method == "GET" and request.url.path.startswith("/talks/"):
                talk = next(iter(emulator.talks.values()))
                return JSONResponse(
                    {**{k: v for k, v in talk.items() if k != "polls"}, "error": error}
                )
            return response

        avatars = DIDAvatars(
            emulator.api_key, base_url=server.url, source_url="u", poll_interval_s=0
        )
        with pytest.raises(PermanentError) as caught:
            await avatars.clip(context(), SEGMENT)
    assert caught.value.code == "d-id_error"
    ErrorInfo(code=caught.value.code, message=caught.value.message, details=caught.value.details)


@pytest.mark.parametrize("status", ["started", "s" * 1000, 7, None])
async def test_did_talk_that_never_ends_gives_up_with_a_timeout(status: object) -> None:
    """A talk that stays `started` (or any unknown status) for ever: a retryable timeout."""
    body = orjson.dumps({"id": "tlk_1", "status": status})
    async with EmulatorServer(answering(200, body)) as server:
        avatars = DIDAvatars(
            "k", base_url=server.url, source_url="u", poll_interval_s=0, max_polls=3
        )
        with pytest.raises(TransientError, match="d-id_timeout"):
            await avatars.clip(context(), SEGMENT)


def _answers(body: Any) -> FastAPI:
    """A service whose image endpoint answers 200 with the streamed `body()`."""
    app = FastAPI()

    @app.post("/v2beta/stable-image/generate/core")
    async def generate() -> StreamingResponse:
        return StreamingResponse(body(), media_type="image/png")

    return app


async def _endless() -> AsyncIterator[bytes]:
    for _ in range(10_000):  # 10 GiB, were it all read
        yield b"\x89" * 2**20


async def _dripping() -> AsyncIterator[bytes]:
    for _ in range(10_000):  # a byte every 0.2 s: every read well inside its timeout
        yield b"\x89"
        await asyncio.sleep(0.2)


@pytest.mark.parametrize(
    ("body", "code"),
    [(_endless, "stability_answer_too_large"), (_dripping, "stability_timeout")],
)
async def test_an_answer_too_large_or_too_slow_is_cut_short(body: Any, code: str) -> None:
    """httpx reads whatever comes, for as long as each read keeps inside its timeout: a broken
    or hostile service could fill the stage's memory, or hold the call until the stage's time
    limit (which is not retried)."""
    async with EmulatorServer(_answers(body)) as server:
        images = StabilityImages(
            "key",
            base_url=server.url,
            timeout_s=1.0,
            max_answer_bytes=4 * 2**20,
            answer_within_s=2.0,
        )
        async with asyncio.timeout(30):
            with pytest.raises(TransientError) as cut:
                await images.make(SCRIPT, SEGMENT, "p1")
        await images.aclose()
    assert cut.value.code == code


async def test_an_answer_declaring_a_body_past_the_bound_is_refused_before_it_is_read() -> None:
    app = FastAPI()

    @app.post("/v2beta/stable-image/generate/core")
    async def generate() -> StreamingResponse:
        return StreamingResponse(_endless(), headers={"content-length": str(10**12)})

    async with EmulatorServer(app) as server:
        images = StabilityImages("key", base_url=server.url, max_answer_bytes=4 * 2**20)
        with pytest.raises(TransientError) as cut:
            await images.make(SCRIPT, SEGMENT, "p1")
        await images.aclose()
    assert cut.value.code == "stability_answer_too_large" and "1000000000000" in str(cut.value)

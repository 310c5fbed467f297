"""The bounded httpx transport every stage reads external answers through (`ytmaker_shared.http`):
at most so many bytes of an answer, the whole of it within so long of the request having been
sent, and either failure a retryable stage error."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from tests.emulators.base import Drip, EmulatorServer, Flood, Streamed, streamed_body
from ytmaker_shared.http import AnswerTooLarge, BoundedTransport, transport_error


def service(faults: list[Flood | Drip]) -> FastAPI:
    """`POST /` reads the whole body and answers its size, or the next queued fault."""
    app = FastAPI()

    @app.post("/")
    async def answer(request: Request) -> Any:
        size = len(await request.body())
        if faults:
            return StreamingResponse(streamed_body(faults.pop(0), Streamed(), b"{", request))
        return JSONResponse({"size": size})

    return app


async def slowly(data: bytes, pieces: int, pause_s: float) -> AsyncIterator[bytes]:
    step = -(-len(data) // pieces)
    for at in range(0, len(data), step):
        await asyncio.sleep(pause_s)
        yield data[at : at + step]


async def test_the_time_limit_counts_from_when_the_request_has_been_sent() -> None:
    """A body that takes longer to send than the answer's time limit (a video chunk up a slow
    link) is not cut short: the limit is on the answer, not on the upload."""
    async with (
        EmulatorServer(service([])) as server,
        httpx.AsyncClient(transport=BoundedTransport(1024, 0.2), timeout=5) as client,
    ):
        started = time.monotonic()
        response = await client.post(server.url, content=slowly(b"v" * 40_000, 5, 0.1))
        assert time.monotonic() - started > 0.4  # the sending alone took twice the limit
    assert response.json() == {"size": 40_000}


@pytest.mark.parametrize(
    ("fault", "error", "code"),
    [
        (Flood(64 * 2**20), AnswerTooLarge, "svc_answer_too_large"),
        (Drip(every_s=0.05, for_s=30), httpx.ReadTimeout, "svc_timeout"),
    ],
    ids=["too-large", "too-slow"],
)
async def test_an_answer_past_either_bound_is_cut_short_as_a_transient_error(
    fault: Flood | Drip, error: type[Exception], code: str
) -> None:
    async with (
        EmulatorServer(service([fault])) as server,
        httpx.AsyncClient(transport=BoundedTransport(2**20, 0.5), timeout=5) as client,
    ):
        started = time.monotonic()
        with pytest.raises(error) as caught:
            await client.post(server.url, content=b"{}")
        assert time.monotonic() - started < 3
        assert (await client.post(server.url, content=b"ok")).json() == {"size": 2}
    assert isinstance(caught.value, httpx.TransportError)
    assert transport_error("svc", caught.value).code == code


async def test_a_callers_trace_extension_still_sees_every_event() -> None:
    """The transport follows the request through httpcore's `trace` extension; one the caller
    set is still called."""
    seen: list[str] = []

    async def trace(event: str, info: dict[str, Any]) -> None:
        seen.append(event)

    async with (
        EmulatorServer(service([])) as server,
        httpx.AsyncClient(transport=BoundedTransport(1024, 5)) as client,
    ):
        response = await client.post(server.url, content=b"abc", extensions={"trace": trace})
    assert response.json() == {"size": 3}
    assert "http11.receive_response_headers.started" in seen
    assert "http11.response_closed.complete" in seen

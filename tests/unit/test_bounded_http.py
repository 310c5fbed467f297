"""The bounded httpx transport every stage reads external answers through (`ytmaker_shared.http`):
at most so many bytes of an answer, the whole of it within so long of the request having been
sent, and either failure a retryable stage error."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from tests.emulators.base import Drip, EmulatorServer, Flood, Streamed, streamed_body
from tests.support.forward_proxy import ForwardProxy, clear_proxy_settings
from ytmaker_shared.http import AnswerTooLarge, BoundedTransport, bounded_client, transport_error


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


@pytest.fixture
def no_proxy_settings(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """An environment without proxy settings, for the test to add its own."""
    clear_proxy_settings(monkeypatch)
    return monkeypatch


@pytest.fixture
def tls_certificate(tmp_path: Path, no_proxy_settings: pytest.MonkeyPatch) -> Path:
    """A server certificate for 127.0.0.1 from an authority the clients made afterwards trust
    (`SSL_CERT_FILE`, which httpx reads as it builds a transport): a PEM with key and chain."""
    authority = trustme.CA()
    authority.cert_pem.write_to_path(str(tmp_path / "authority.pem"))
    certificate = tmp_path / "server.pem"
    authority.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(certificate))
    no_proxy_settings.setenv("SSL_CERT_FILE", str(tmp_path / "authority.pem"))
    return certificate


async def test_a_stage_goes_out_through_the_proxy_the_environment_names(
    no_proxy_settings: pytest.MonkeyPatch,
) -> None:
    """A site whose egress is a proxy sets `HTTP(S)_PROXY`: a bounded client goes through it,
    credentials and all, and every answer is still bounded."""
    async with ForwardProxy() as proxy, EmulatorServer(service([Flood(2**20)])) as server:
        credentialed = proxy.url.replace("http://", "http://stage:s3cret@")
        no_proxy_settings.setenv("HTTP_PROXY", credentialed)
        async with bounded_client(1024, 5, timeout=5) as client:
            with pytest.raises(AnswerTooLarge):
                await client.post(server.url + "/", content=b"{}")
            assert (await client.post(server.url + "/", content=b"abc")).json() == {"size": 3}
    assert proxy.seen == [f"POST {server.url}/"] * 2
    assert proxy.authorizations == ["Basic " + base64.b64encode(b"stage:s3cret").decode()] * 2


async def test_the_hosts_no_proxy_lists_are_reached_straight(
    no_proxy_settings: pytest.MonkeyPatch,
) -> None:
    async with ForwardProxy() as proxy, EmulatorServer(service([])) as server:
        no_proxy_settings.setenv("HTTP_PROXY", proxy.url)
        no_proxy_settings.setenv("NO_PROXY", "example.org,127.0.0.1")
        async with bounded_client(1024, 5, timeout=5) as client:
            assert (await client.post(server.url + "/", content=b"ab")).json() == {"size": 2}
    assert proxy.seen == []


async def test_through_a_proxys_tunnel_the_time_limit_counts_from_the_request_sent(
    tls_certificate: Path, no_proxy_settings: pytest.MonkeyPatch
) -> None:
    """For an `https://` address the client asks the proxy to `CONNECT`, then sends its request
    inside the tunnel: a body slower to send than the answer's limit is not cut short (the
    limit starts again once the request itself has been sent), and a slow answer still is."""
    faults: list[Flood | Drip] = []
    async with (
        ForwardProxy() as proxy,
        EmulatorServer(service(faults), certificate=tls_certificate) as server,
    ):
        no_proxy_settings.setenv("HTTPS_PROXY", proxy.url)
        async with bounded_client(2**20, 0.2, timeout=5) as client:
            started = time.monotonic()
            response = await client.post(server.url + "/", content=slowly(b"v" * 40_000, 5, 0.1))
            assert time.monotonic() - started > 0.4
            assert response.json() == {"size": 40_000}
            faults.append(Drip(every_s=0.05, for_s=30))
            with pytest.raises(httpx.ReadTimeout):
                await client.post(server.url + "/", content=b"{}")
    assert server.url.startswith("https://")
    assert proxy.seen[0] == f"CONNECT {server.url.removeprefix('https://')}"
    assert all(seen.startswith("CONNECT ") for seen in proxy.seen)

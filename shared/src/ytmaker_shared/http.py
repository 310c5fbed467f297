"""External answers read with bounds: the httpx transport of every stage that calls a service
(Gemini, Stability, D-ID, YouTube), and its failures as stage errors.

httpx reads whatever an answer holds, for as long as each read keeps inside its timeout: a
broken or hostile service could fill a stage's memory, or send a byte just inside each read
timeout and hold the call until the stage's own time limit (which is not retried).
`BoundedTransport` takes at most `max_bytes` of an answer's body, and the whole answer (its
headers and body) within `within_s` of the request having been sent. Past either bound the call
fails with an `httpx.TransportError` (`AnswerTooLarge`, or `httpx.ReadTimeout`), which
`transport_error` makes a retryable stage error.

The time limit starts once the request has been sent, when httpcore starts reading the answer:
sending a large body (a video chunk up a slow link) is not counted against it. Until then
httpx's own timeouts bound the call (pool, connect, and each write). Through a proxy's tunnel
(`CONNECT`, for an `https://` address) the proxy's answer to the `CONNECT` is bounded the same
way, and the limit starts again once the request itself has been sent.

A client given its transport no longer reads the proxy settings of the environment: a stage
builds its client with `bounded_client`, which goes out as httpx's own clients do (through the
proxy `HTTPS_PROXY`, `HTTP_PROXY` or `ALL_PROXY` names, past it for the hosts `NO_PROXY`
lists), every answer bounded on either road.

httpx is not among shared's own dependencies (the images of the stages that call no service do
not carry it): every service that imports this module declares it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx

# httpx's reading of HTTP(S)_PROXY, ALL_PROXY and NO_PROXY (curl's rules), the one its own
# clients use when they build their transports; not exported, so a test pins what it does.
from httpx._utils import get_environment_proxies

from ytmaker_shared.stageworker import TransientError

#: The end of the trace event httpcore sends when it starts reading an answer (`http11.` or
#: `http2.` before it): the request has been sent (or the server answered before taking it).
_ANSWER_STARTS = ".receive_response_headers.started"
#: ... and the one it sends when it starts sending a request (a `CONNECT` to a proxy is one).
_REQUEST_STARTS = ".send_request_headers.started"


class AnswerTooLarge(httpx.TransportError):
    """An answer's body went past what the adapter takes from that service."""


def transport_error(service: str, exc: httpx.TransportError) -> TransientError:
    """A transport failure as a retryable stage error: `{service}_answer_too_large`,
    `{service}_timeout` (no answer, or not all of it, in time) or `{service}_unavailable`."""
    if isinstance(exc, AnswerTooLarge):
        return TransientError(f"{service}_answer_too_large", f"{service} answered {exc}")
    if isinstance(exc, httpx.TimeoutException):
        return TransientError(f"{service}_timeout", f"{service} did not answer in time: {exc!r}")
    return TransientError(f"{service}_unavailable", f"cannot reach {service}: {exc!r}")


def bounded_client(max_bytes: int, within_s: float, **options: Any) -> httpx.AsyncClient:
    """An httpx client (`options` are `httpx.AsyncClient`'s) whose every answer is bounded
    (`BoundedTransport`) and which goes out through the proxy the environment names, as httpx's
    own clients do: the proxy of `HTTPS_PROXY`, `HTTP_PROXY` or `ALL_PROXY` for the address's
    scheme, none for the hosts `NO_PROXY` lists. A proxy's URL may carry its credentials
    (`http://user:password@proxy:3128`); they go to the proxy only, never into a log."""
    proxies = {
        pattern: None if proxy is None else BoundedTransport(max_bytes, within_s, proxy=proxy)
        for pattern, proxy in get_environment_proxies().items()
    }
    return httpx.AsyncClient(
        transport=BoundedTransport(max_bytes, within_s), mounts=proxies, **options
    )


class BoundedTransport(httpx.AsyncBaseTransport):
    """httpx's transport with every answer bounded: at most `max_bytes` of body, the whole of it
    within `within_s` of the request having been sent (see the module's docstring)."""

    def __init__(self, max_bytes: int, within_s: float, proxy: str | None = None) -> None:
        """`proxy`: the URL of the proxy every request goes through (None: straight out)."""
        self.max_bytes = max_bytes
        self.within_s = within_s
        self._inner = httpx.AsyncHTTPTransport(proxy=proxy)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        loop = asyncio.get_running_loop()
        answer_from: float | None = None  # when the last answer began to be read
        limit: asyncio.Timeout | None = None
        callers_trace = request.extensions.get("trace")

        async def trace(event: str, info: dict[str, Any]) -> None:
            nonlocal answer_from
            if limit is not None and event.endswith(_REQUEST_STARTS):
                limit.reschedule(None)  # a request being sent: httpx's write timeout bounds it
            elif limit is not None and event.endswith(_ANSWER_STARTS):
                answer_from = loop.time()
                limit.reschedule(answer_from + self.within_s)
            if callers_trace is not None:
                await callers_trace(event, info)

        extensions = request.extensions
        request.extensions = {**extensions, "trace": trace}
        try:
            async with asyncio.timeout(None) as limit:
                response = await self._inner.handle_async_request(request)
        except TimeoutError:
            raise httpx.ReadTimeout(
                f"no answer within {self.within_s:g}s", request=request
            ) from None
        finally:
            request.extensions = extensions
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await response.aclose()
            raise AnswerTooLarge(f"an answer of {declared} bytes", request=request)
        deadline = (loop.time() if answer_from is None else answer_from) + self.within_s
        body = _BoundedBody(response.stream, request, self.max_bytes, deadline)
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            stream=body,
            extensions=response.extensions,
            request=request,
        )

    async def aclose(self) -> None:
        await self._inner.aclose()


class _BoundedBody(httpx.AsyncByteStream):
    """An answer's body: at most `max_bytes`, all of it by `deadline` (the loop's clock)."""

    def __init__(self, inner: Any, request: httpx.Request, max_bytes: int, deadline: float) -> None:
        self._inner, self._request = inner, request
        self._max_bytes, self._deadline = max_bytes, deadline

    async def __aiter__(self) -> AsyncIterator[bytes]:
        received = 0
        chunks = aiter(self._inner)
        while True:
            try:  # the limit is on each wait for the inner stream, never around a `yield`
                async with asyncio.timeout_at(self._deadline):
                    chunk = await anext(chunks)
            except StopAsyncIteration:
                return
            except TimeoutError:
                raise httpx.ReadTimeout("the answer took too long", request=self._request) from None
            received += len(chunk)
            if received > self._max_bytes:
                raise AnswerTooLarge(
                    f"an answer past {self._max_bytes} bytes", request=self._request
                )
            yield chunk

    async def aclose(self) -> None:
        await self._inner.aclose()

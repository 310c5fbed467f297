"""httpx failures as stage errors: timeouts and cut connections are transient; answers that
are not what the API documents are errors of their own, never a crash."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx

from ytmaker_shared.stageworker import (
    StageError,
    TransientError,
    error_for_status,
    parse_retry_after,
)


def transport_error(service: str, exc: httpx.TransportError) -> TransientError:
    if isinstance(exc, AnswerTooLarge):
        return TransientError(f"{service}_answer_too_large", f"{service} answered {exc}")
    if isinstance(exc, httpx.TimeoutException):
        return TransientError(f"{service}_timeout", f"{service} did not answer in time: {exc!r}")
    return TransientError(f"{service}_unavailable", f"cannot reach {service}: {exc!r}")


def json_object(response: httpx.Response) -> dict[str, Any] | None:
    """The answer's JSON object, or None when the body is not one (any JSON, or none)."""
    try:
        body = response.json()
    except (ValueError, RecursionError):  # not JSON, not UTF-8, nested too deep
        return None
    return body if isinstance(body, dict) else None


def text_of(value: Any, limit: int = 500) -> str:
    """A value from an answer as text of at most `limit` characters."""
    return (value if isinstance(value, str) else repr(value))[:limit]


def response_error(service: str, response: httpx.Response, message: str) -> StageError:
    return error_for_status(
        response.status_code,
        f"{service} answered {response.status_code}: {message}"[:4000],
        service=service,
        retry_after_s=parse_retry_after(response.headers.get("retry-after")),
    )


class AnswerTooLarge(httpx.TransportError):
    """An answer's body went past what the adapter takes from that service."""


class BoundedTransport(httpx.AsyncBaseTransport):
    """httpx's transport with every answer bounded: at most `max_bytes` of body (a hostile or
    broken service cannot fill the stage's memory), the whole of it within `within_s` of the
    request (httpx's timeouts are per read: a server that sends a byte just inside each one
    held a call until the stage's own time limit, which is not retried)."""

    def __init__(self, max_bytes: int, within_s: float) -> None:
        self.max_bytes = max_bytes
        self.within_s = within_s
        self._inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        deadline = time.monotonic() + self.within_s
        try:
            async with asyncio.timeout(self.within_s):
                response = await self._inner.handle_async_request(request)
        except TimeoutError:
            raise httpx.ReadTimeout(
                f"no answer within {self.within_s:g}s", request=request
            ) from None
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await response.aclose()
            raise AnswerTooLarge(f"an answer of {declared} bytes", request=request)
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
    def __init__(self, inner: Any, request: httpx.Request, max_bytes: int, deadline: float) -> None:
        self._inner, self._request = inner, request
        self._max_bytes, self._deadline = max_bytes, deadline

    async def __aiter__(self) -> AsyncIterator[bytes]:
        received = 0
        chunks = aiter(self._inner)
        while True:
            left = self._deadline - time.monotonic()
            try:
                async with asyncio.timeout(max(left, 0)):
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

"""httpx failures as stage errors: timeouts and cut connections are transient."""

from __future__ import annotations

import httpx

from ytmaker_shared.stageworker import (
    StageError,
    TransientError,
    error_for_status,
    parse_retry_after,
)


def transport_error(service: str, exc: httpx.TransportError) -> TransientError:
    if isinstance(exc, httpx.TimeoutException):
        return TransientError(f"{service}_timeout", f"{service} did not answer in time: {exc!r}")
    return TransientError(f"{service}_unavailable", f"cannot reach {service}: {exc!r}")


def response_error(service: str, response: httpx.Response, message: str) -> StageError:
    return error_for_status(
        response.status_code,
        f"{service} answered {response.status_code}: {message}"[:4000],
        service=service,
        retry_after_s=parse_retry_after(response.headers.get("retry-after")),
    )

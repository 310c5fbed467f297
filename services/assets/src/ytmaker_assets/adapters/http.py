"""Answers of Stability and D-ID read as the APIs document them: answers that are not what the
API documents are errors of their own, never a crash. Bounds on every answer, and transport
failures as stage errors, are shared (`ytmaker_shared.http`)."""

from __future__ import annotations

from typing import Any

import httpx

from ytmaker_shared.stageworker import StageError, error_for_status, parse_retry_after


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

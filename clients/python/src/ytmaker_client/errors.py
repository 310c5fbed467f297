"""What the SDK raises. Every error the API answers carries its code (docs/protocol.md: `forbidden`,
`conflict`, `invalid_request`, ...); catch `YtmakerError` for all of them."""

from __future__ import annotations

from typing import Any

import httpx


class YtmakerError(Exception):
    """Base of every SDK error."""


class ApiError(YtmakerError):
    """The gateway refused a request. `code` is the API's error code (`forbidden`, `conflict`,
    `invalid_request`, `unavailable`, ...), `status` the HTTP status (None for a WebSocket
    refusal), `details` the API's details (for `invalid_request`: `errors`)."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        status: int | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status
        self.details = details or {}

    @property
    def retryable(self) -> bool:
        """Whether the same request may succeed later (the read model or the log was busy)."""
        return self.code in ("unavailable", "replay_failed", "rate_limited")

    @classmethod
    def from_response(cls, response: httpx.Response) -> ApiError:
        """The error of a non-2xx answer (a redirect too: the gateway never sends one); a body
        that is not the API's error shape still gives an error with the status as its code."""
        try:
            body = response.json()
            error = body["error"]
            code, message = str(error["code"]), str(error.get("message", ""))
            details = error.get("details") or {}
            if not isinstance(details, dict):
                details = {"details": details}
        except (ValueError, KeyError, TypeError, RecursionError):
            code = _CODES.get(response.status_code, f"http_{response.status_code}")
            message, details = response.text[:300] or response.reason_phrase, {}
        return cls(code, message, status=response.status_code, details=details)


_CODES = {
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    409: "conflict",
    422: "invalid_request",
    503: "unavailable",
}


class TransportError(YtmakerError):
    """The gateway could not be reached or did not answer in time."""


class SubscriptionError(ApiError):
    """The gateway refused a subscription for good (e.g. `forbidden`): it ends the
    subscription. `task_id` or `project_id` names it."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        task_id: str | None = None,
        project_id: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(code, message, details=details)
        self.task_id = task_id
        self.project_id = project_id


class ConnectionLost(YtmakerError):
    """The connection could not be re-established within the configured attempts, or the
    client was closed: every subscription on it ends with this error."""


class AuthenticationError(ConnectionLost):
    """The gateway refused the token (HTTP 401 or WebSocket close 4401): reconnecting with
    the same token cannot help."""

"""The gateway's errors: one code for programs, a message for people, an HTTP status
(docs/protocol.md "Errors": `{"error": {"code", "message", "details"}}`). The WebSocket sends the
same code and message in an `error` message."""

from __future__ import annotations

from typing import Any


class GatewayError(Exception):
    status = 500
    code = "internal"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}

    def headers(self) -> dict[str, str]:
        """HTTP headers that go with the error (e.g. `Retry-After`)."""
        return {}


class Unauthorized(GatewayError):
    status = 401
    code = "unauthorized"

    def headers(self) -> dict[str, str]:
        """What RFC 9110 wants with a 401: how to authenticate (a bearer token)."""
        return {"WWW-Authenticate": 'Bearer realm="ytmaker"'}


class Forbidden(GatewayError):
    """Also used for a task that does not exist, so that nobody learns whether it does."""

    status = 403
    code = "forbidden"

    def __init__(self, message: str = "no such task or project for you", **details: Any) -> None:
        super().__init__(message, **details)


class NotFound(GatewayError):
    status = 404
    code = "not_found"


class Conflict(GatewayError):
    status = 409
    code = "conflict"


class Invalid(GatewayError):
    status = 422
    code = "invalid_request"


class Unavailable(GatewayError):
    status = 503
    code = "unavailable"


class TooManyRequests(GatewayError):
    """A per-user limit: `details.retry_after` (seconds) is also sent as `Retry-After`."""

    status = 429
    code = "rate_limited"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message, retry_after=retry_after)
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}

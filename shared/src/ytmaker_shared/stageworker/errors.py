"""How a stage's work says why it failed, so the framework knows whether to retry.

The work raises `TransientError` for what may pass (rate limits, 5xx, timeouts, a cut
connection) and `PermanentError` for what will not (bad input, 4xx other than 429): the first is
retried with backoff up to the stage's `max_attempts`, the second fails the stage at once. Any
other exception is a bug and fails the stage as `internal_error`.
"""

from __future__ import annotations

from typing import Any

#: Error codes the framework itself writes into `stage.failed`.
TIME_LIMIT = "time_limit"
INTERNAL_ERROR = "internal_error"


class StageError(Exception):
    """Base: a stable `code` for programs, a `message` for people, optional `details`."""

    def __init__(self, code: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.details = details or {}


class TransientError(StageError):
    """May succeed if tried again. `retry_after_s` (e.g. from a Retry-After header) is the
    least delay before the next attempt."""

    transient = True  # ytmaker_shared.transient

    def __init__(
        self,
        code: str,
        message: str,
        details: dict[str, Any] | None = None,
        *,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(code, message, details)
        self.retry_after_s = retry_after_s


class PermanentError(StageError):
    """Will fail the same way every time: do not retry."""

    transient = False  # ytmaker_shared.transient, whatever it was raised from


def is_transient_status(status: int) -> bool:
    """HTTP statuses worth retrying: 408, 425, 429 and every 5xx."""
    return status in (408, 425, 429) or status >= 500


def error_for_status(
    status: int,
    message: str,
    *,
    service: str,
    retry_after_s: float | None = None,
    details: dict[str, Any] | None = None,
) -> StageError:
    """The error for an HTTP response of `service` (e.g. "gemini") that was not a success:
    429/5xx/408 transient (code `<service>_unavailable` or `<service>_rate_limited`), other
    statuses permanent (`<service>_rejected`)."""
    info = {"status": status, **(details or {})}
    if status == 429:
        return TransientError(f"{service}_rate_limited", message, info, retry_after_s=retry_after_s)
    if is_transient_status(status):
        return TransientError(f"{service}_unavailable", message, info, retry_after_s=retry_after_s)
    return PermanentError(f"{service}_rejected", message, info)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header given in seconds; None for a date or nonsense."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if 0 <= seconds < 3600 else None

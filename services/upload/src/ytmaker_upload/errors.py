"""The one error the publishers raise: what went wrong and whether trying later may help."""

from __future__ import annotations


class PublishError(Exception):
    """`code` is stable (for `stage.failed`), `transient` says whether a retry may succeed:
    rate limits, 5xx and broken connections are transient; a refused grant, a rejected video
    or bad metadata are not. `retry_after_s`: the least wait the service asked for."""

    def __init__(
        self, code: str, message: str, transient: bool, *, retry_after_s: float | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.transient = transient
        self.retry_after_s = retry_after_s

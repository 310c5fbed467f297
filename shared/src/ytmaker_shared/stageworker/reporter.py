"""Honest sub-progress for a stage's work: the work says how many of its real steps are done
(segments drawn, bytes sent, seconds encoded); the reporter turns that into `stage.progress`
events, at most one per `interval_s`, never going backwards within an attempt, and always
sending the latest figure (a trailing send after the quiet interval)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

from ytmaker_shared.events import StageProgressPayload

Emit = Callable[[StageProgressPayload], Awaitable[None]]


def percent(completed: float, total: float) -> float:
    """`completed / total` as 0..100, clamped; 0 when total is not positive."""
    if total <= 0:
        return 0.0
    return round(max(0.0, min(100.0, 100.0 * completed / total)), 2)


class ProgressReporter:
    """Give it to the work (`ctx.progress`). Call `report` from the event loop, or
    `report_threadsafe` from a worker thread. The framework calls `close()` before the
    stage's terminal event, so no progress ever follows it."""

    def __init__(
        self,
        emit: Emit,
        *,
        attempt: int = 1,
        interval_s: float = 0.25,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._emit = emit
        self._attempt = attempt
        self._interval = interval_s
        self._clock = clock
        self._last_sent_at: float | None = None
        self._best = -1.0
        self._pending: StageProgressPayload | None = None
        self._trailing: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self.sent: int = 0

    async def report(
        self,
        completed: int,
        total: int,
        message: str = "",
        *,
        current_step: str | None = None,
    ) -> None:
        """`completed` of `total` real steps are done. Cheap to call often."""
        if self._closed:
            return
        self._loop = asyncio.get_running_loop()
        value = percent(completed, total)
        if value < self._best:
            return
        self._best = value
        payload = StageProgressPayload(
            progress=value,
            message=message,
            current_step=current_step,
            completed_steps=max(0, completed),
            total_steps=max(0, total),
            attempt=self._attempt,
        )
        now = self._clock()
        due = self._last_sent_at is None or now - self._last_sent_at >= self._interval
        if due or completed >= total:
            self._pending = None
            await self._send(payload)
            return
        self._pending = payload
        if self._trailing is None or self._trailing.done():
            wait = self._interval - (now - (self._last_sent_at or now))
            self._trailing = asyncio.create_task(self._send_later(max(0.0, wait)))

    def bind_loop(self) -> None:
        """Remember the running loop, so that `report_threadsafe` works before any `report`."""
        self._loop = asyncio.get_running_loop()

    def report_threadsafe(
        self, completed: int, total: int, message: str = "", *, current_step: str | None = None
    ) -> None:
        """`report` from a thread (blocking work run with `asyncio.to_thread`)."""
        loop = self._loop
        if loop is None or self._closed:
            return
        asyncio.run_coroutine_threadsafe(
            self.report(completed, total, message, current_step=current_step), loop
        )

    async def _send_later(self, delay: float) -> None:
        await asyncio.sleep(delay)
        if self._pending is not None and not self._closed:
            payload, self._pending = self._pending, None
            await self._send(payload)

    async def _send(self, payload: StageProgressPayload) -> None:
        async with self._lock:
            if self._closed:
                return
            self._last_sent_at = self._clock()
            self.sent += 1
            await self._emit(payload)

    async def close(self) -> None:
        """Stop: drop what is pending, wait for a send in progress."""
        self._closed = True
        if self._trailing is not None:
            self._trailing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._trailing
        async with self._lock:
            pass

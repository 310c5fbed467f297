"""One job: the attempts of one stage for one task, with retries, time limits, pause and stop.
It emits `stage.started`, `stage.progress` and `stage.retrying` as it goes and returns the
terminal events, which the worker records and publishes (decision 0010)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import shutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from pydantic import ValidationError

from ytmaker_shared.artifacts import ArtifactStore
from ytmaker_shared.events import (
    ErrorInfo,
    Event,
    StageCancelled,
    StageCancelledPayload,
    StageCompleted,
    StageCompletedPayload,
    StageFailed,
    StageFailedPayload,
    StageProgressed,
    StageProgressPayload,
    StageRetrying,
    StageRetryingPayload,
    StageStarted,
    StageStartedPayload,
    TaskCancelled,
    TaskCancelledPayload,
    TaskCompleted,
    TaskCompletedPayload,
    TaskFailed,
    TaskFailedPayload,
)
from ytmaker_shared.events.envelope import TEXT_MAX_LENGTH
from ytmaker_shared.stageworker.control import Control, ControlBoard
from ytmaker_shared.stageworker.errors import (
    INTERNAL_ERROR,
    TIME_LIMIT,
    PermanentError,
    StageError,
    TransientError,
)
from ytmaker_shared.stageworker.policy import StagePolicy
from ytmaker_shared.stageworker.reporter import ProgressReporter
from ytmaker_shared.stageworker.work import (
    JobContext,
    StageResult,
    StageWork,
    scratch_dir,
    workspace_prefix,
)
from ytmaker_shared.transient import is_transient

log = logging.getLogger(__name__)

Emit = Callable[[Event], Awaitable[None]]


class StopReason(StrEnum):
    CANCELLED = "cancelled"  # the task was cancelled: emit stage.cancelled
    HANDED_BACK = "handed_back"  # shutdown or rebalance: another run will redo it, emit nothing


@dataclass
class _AttemptEnd:
    result: StageResult | None = None
    error: BaseException | None = None
    stopped: bool = False
    time_limit: bool = False
    abandoned: bool = False


@dataclass
class Job:
    """The worker's handle on one running (task, stage)."""

    work: StageWork
    event: Event
    policy: StagePolicy
    records: list[tuple[Any, int]] = field(default_factory=list)  # (partition, offset) held
    stop_reason: StopReason | None = None
    parked: bool = False  # waiting for a resume: does not count against the capacity
    task: asyncio.Task[list[Event] | None] | None = None
    _stop_event: asyncio.Event = field(default_factory=asyncio.Event)
    _current: asyncio.Task[StageResult] | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.event.task_id, self.work.stage.value)

    def stop(self, reason: StopReason) -> None:
        """Ask the job to stop now: the running attempt is cancelled (its work gets
        CancelledError) and no further attempt starts. The first reason wins."""
        if self.stop_reason is None:
            self.stop_reason = reason
        self._stop_event.set()
        if self._current is not None:
            self._current.cancel()


class JobRunner:
    def __init__(
        self,
        job: Job,
        *,
        producer_name: str,
        emit: Emit,
        store: ArtifactStore,
        control: ControlBoard,
        slots: asyncio.Semaphore,
        progress_interval_s: float,
        on_park: Callable[[bool], None] = lambda _parked: None,
        rng: random.Random | None = None,
    ) -> None:
        self.job = job
        self.work = job.work
        self.stage = job.work.stage
        self.policy = job.policy
        self.producer = producer_name
        self.emit = emit
        self.store = store
        self.control = control
        self.slots = slots
        self.progress_interval_s = progress_interval_s
        self.on_park = on_park
        self.rng = rng or random.Random()

    # --- events -----------------------------------------------------------------------------

    def _stage_event(self, cls: type[Any], payload: Any) -> Event:
        event: Event = self.job.event.caused(
            cls, producer=self.producer, stage=self.stage, payload=payload
        )
        return event

    async def _emit_quietly(self, event: Event) -> None:
        """Non-terminal events: a broker hiccup must not fail the work (it is logged)."""
        try:
            await self.emit(event)
        except Exception as exc:
            log.warning("could not emit %s: %r", event.type, exc)

    def failed(self, error: ErrorInfo, attempt: int) -> list[Event]:
        task_failed: Event = self.job.event.caused(
            TaskFailed,
            producer=self.producer,
            payload=TaskFailedPayload(error=error, failed_stage=self.stage),
        )
        return [
            self._stage_event(StageFailed, StageFailedPayload(error=error, attempt=attempt)),
            task_failed,
        ]

    def cancelled(self, message: str) -> list[Event]:
        task_cancelled: Event = self.job.event.caused(
            TaskCancelled, producer=self.producer, payload=TaskCancelledPayload(reason=message)
        )
        return [
            self._stage_event(StageCancelled, StageCancelledPayload(message=message)),
            task_cancelled,
        ]

    # --- the attempts -----------------------------------------------------------------------

    async def run(self) -> list[Event] | None:
        """Attempts until an outcome; the terminal events, or None when handed back."""
        attempt = 0
        while True:
            attempt += 1
            if not await self._wait_runnable():
                return await self._stopped()
            if not await self._acquire_slot():
                return await self._stopped()
            try:
                end = await self._attempt(attempt)
            finally:
                self.slots.release()
            if end.result is not None:
                return self._completed_events(end.result, attempt)
            await self._wipe()
            if end.stopped:
                return await self._stopped()
            if end.time_limit:
                kind = "hard" if end.abandoned else "soft"
                limit = self.policy.hard_limit_s if end.abandoned else self.policy.soft_limit_s
                return self.failed(
                    ErrorInfo(
                        code=TIME_LIMIT,
                        message=f"{self.stage} exceeded its {kind} time limit of {limit:g}s",
                        details={"limit": kind, "seconds": limit},
                    ),
                    attempt,
                )
            error = _classify(end.error)
            info = _error_info(error)
            if isinstance(error, TransientError) and attempt < self.policy.max_attempts:
                delay = self.policy.backoff(
                    attempt, retry_after_s=error.retry_after_s, rng=self.rng
                )
                log.warning("attempt %d failed, retrying in %.2fs: %s", attempt, delay, error)
                await self._emit_quietly(
                    self._stage_event(
                        StageRetrying,
                        StageRetryingPayload(attempt=attempt + 1, delay_seconds=delay, error=info),
                    )
                )
                if not await self._sleep(delay):
                    return await self._stopped()
                continue
            if isinstance(error, TransientError):
                info = info.model_copy(
                    update={"message": f"{info.message} (gave up after {attempt} attempts)"}
                )
            log.warning("stage failed: %s", error)
            return self.failed(info, attempt)

    def _completed_events(self, result: StageResult, attempt: int) -> list[Event]:
        events = [self._completed(result, attempt)]
        if result.task_result is not None:
            task_completed: Event = self.job.event.caused(
                TaskCompleted,
                producer=self.producer,
                payload=TaskCompletedPayload(result=result.task_result),
            )
            events.append(task_completed)
        return events

    def _completed(self, result: StageResult, attempt: int) -> Event:
        return self._stage_event(
            StageCompleted,
            StageCompletedPayload(
                status=result.status,
                artifacts=result.artifacts,
                message=result.message,
                result=result.result,
                attempt=attempt,
            ),
        )

    async def _attempt(self, attempt: int) -> _AttemptEnd:
        await self._wipe()
        scratch = scratch_dir(self.job.event.task_id, self.stage)

        async def emit_progress(payload: StageProgressPayload) -> None:
            await self._emit_quietly(self._stage_event(StageProgressed, payload))

        reporter = ProgressReporter(
            emit_progress, attempt=attempt, interval_s=self.progress_interval_s
        )
        reporter.bind_loop()
        ctx = JobContext(
            event=self.job.event,
            stage=self.stage,
            attempt=attempt,
            store=self.store,
            progress=reporter,
            scratch=scratch,
            log=logging.LoggerAdapter(logging.getLogger(f"ytmaker.stage.{self.stage}")),
        )
        await self._emit_quietly(
            self._stage_event(StageStarted, StageStartedPayload(attempt=attempt))
        )
        work = asyncio.create_task(self.work.run(ctx), name=f"{self.stage}:{ctx.task_id}")
        self.job._current = work
        end = _AttemptEnd()
        try:
            if self.job.stop_reason is not None:
                work.cancel()
            stop = asyncio.create_task(self.job._stop_event.wait())
            done, _ = await asyncio.wait(
                {work, stop}, timeout=self.policy.soft_limit_s, return_when=asyncio.FIRST_COMPLETED
            )
            stop.cancel()
            if work not in done:
                end.stopped = self.job.stop_reason is not None
                end.time_limit = not end.stopped
                work.cancel()
                grace = (
                    self.policy.cancel_grace_s
                    if end.stopped
                    else self.policy.hard_limit_s - self.policy.soft_limit_s
                )
                await asyncio.wait({work}, timeout=grace)
                end.abandoned = not work.done()
                if end.abandoned:
                    log.error("work ignored its cancellation for %.1fs: abandoned", grace)
                    work.add_done_callback(_consume_result)
                return end
            if work.cancelled():
                end.stopped = self.job.stop_reason is not None
                if not end.stopped:
                    end.error = PermanentError(INTERNAL_ERROR, "the work cancelled itself")
                return end
            exc = work.exception()
            if exc is None:
                end.result = work.result()
            elif self.job.stop_reason is not None:
                end.stopped = True  # failed while being stopped: the stop wins
            else:
                end.error = exc
            return end
        finally:
            self.job._current = None
            await reporter.close()
            await asyncio.to_thread(shutil.rmtree, scratch, True)

    async def _stopped(self) -> list[Event] | None:
        await self._wipe()
        if self.job.stop_reason is StopReason.HANDED_BACK:
            return None
        return self.cancelled("cancelled on request")

    async def _wipe(self) -> None:
        """Remove the partial artifacts of this stage."""
        try:
            await self.store.delete_prefix(workspace_prefix(self.job.event.task_id, self.stage))
        except Exception as exc:
            log.warning("could not remove partial artifacts: %r", exc)

    async def _wait_runnable(self) -> bool:
        """Wait while the task is paused; False when stopped or cancelled meanwhile."""
        task_id = self.job.event.task_id
        if self.control.state(task_id) is Control.PAUSED:
            self.on_park(True)
            try:
                waiter = asyncio.create_task(self.control.wait_until_runnable(task_id))
                stop = asyncio.create_task(self.job._stop_event.wait())
                await asyncio.wait({waiter, stop}, return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                stop.cancel()
            finally:
                self.on_park(False)
        if self.control.state(task_id) is Control.CANCELLED:
            self.job.stop(StopReason.CANCELLED)
        return self.job.stop_reason is None

    async def _acquire_slot(self) -> bool:
        acquire = asyncio.create_task(self.slots.acquire())
        stop = asyncio.create_task(self.job._stop_event.wait())
        await asyncio.wait({acquire, stop}, return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        if self.job.stop_reason is None and acquire.done():
            return True
        acquire.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            if await acquire:
                self.slots.release()
        return False

    async def _sleep(self, seconds: float) -> bool:
        """Sleep unless stopped first; False when stopped."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self.job._stop_event.wait()
        return self.job.stop_reason is None


#: Room left in an error's message for what the runner adds ("gave up after n attempts").
_MESSAGE_ROOM = 100


def _error_info(error: StageError) -> ErrorInfo:
    """`error` as its events carry it, within the contract's bounds: an adapter may repeat a
    service's answer at any length, and an event that cannot be made ends nothing."""
    code = error.code[:64] or INTERNAL_ERROR
    message = error.message[: TEXT_MAX_LENGTH - _MESSAGE_ROOM]
    try:
        return ErrorInfo(code=code, message=message, details=error.details)
    except ValidationError:  # details beyond the contract's size: the message says enough
        return ErrorInfo(code=code, message=message)


def _classify(exc: BaseException | None) -> StageError:
    if isinstance(exc, StageError):
        return exc
    if isinstance(exc, TimeoutError):
        return TransientError("timeout", f"timed out: {exc!r}")
    if isinstance(exc, ConnectionError):
        return TransientError("connection_error", f"connection failed: {exc!r}")
    if exc is not None and is_transient(exc):  # storage, network, broker
        return TransientError("transient_error", f"{exc!r}"[:4000])
    log.error("work raised an unexpected error", exc_info=exc)
    return PermanentError(INTERNAL_ERROR, f"unexpected error: {exc!r}"[:4000])


def _consume_result(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()

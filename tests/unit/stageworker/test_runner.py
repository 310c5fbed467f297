"""A job's attempts without Kafka: the events it emits and the outcome it returns."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable

import pytest

from tests.support.wait import wait_until
from ytmaker_shared.artifacts import MemoryArtifactStore
from ytmaker_shared.events import (
    CancelTask,
    ControlPayload,
    Event,
    PauseTask,
    ResumeTask,
    TaskRequested,
    TaskRequestedPayload,
)
from ytmaker_shared.stages import Stage
from ytmaker_shared.stageworker import (
    ControlBoard,
    Job,
    JobContext,
    JobRunner,
    PermanentError,
    StagePolicy,
    StageResult,
    StageWork,
    StopReason,
    TransientError,
)

Body = Callable[[JobContext], Awaitable[StageResult]]


class FakeWork(StageWork):
    stage = Stage.SCRIPT

    def __init__(self, body: Body) -> None:
        self.body = body
        self.calls = 0

    def starts(self, event: Event) -> bool:
        return isinstance(event, TaskRequested)

    async def run(self, ctx: JobContext) -> StageResult:
        self.calls += 1
        return await self.body(ctx)


def requested() -> TaskRequested:
    return TaskRequested(
        task_id="t-" + uuid.uuid4().hex[:8],
        project_id="p1",
        owner="alice",
        producer="test",
        correlation_id="c1",
        payload=TaskRequestedPayload(title="T", content="C."),
    )


class Harness:
    def __init__(self, body: Body, policy: StagePolicy | None = None) -> None:
        self.events: list[Event] = []
        self.store = MemoryArtifactStore(uuid.uuid4().hex)
        self.control = ControlBoard()
        self.work = FakeWork(body)
        self.job = Job(
            work=self.work,
            event=requested(),
            policy=policy or StagePolicy(backoff_base_s=0.01, backoff_max_s=0.05),
        )
        self.runner = JobRunner(
            self.job,
            producer_name="test/1",
            emit=self._emit,
            store=self.store,
            control=self.control,
            slots=asyncio.Semaphore(1),
            progress_interval_s=0.0,
        )

    async def _emit(self, event: Event) -> None:
        self.events.append(event)

    def types(self) -> list[str]:
        return [e.type for e in self.events]

    def control_event(self, cls: type) -> Event:
        e: Event = self.job.event.caused(
            cls, producer="gw", payload=ControlPayload(requested_by="alice")
        )
        return e


async def test_success_emits_started_progress_and_returns_completed() -> None:
    async def body(ctx: JobContext) -> StageResult:
        artifact = await ctx.put("script.json", b"{}")
        await ctx.progress.report(1, 2, "half")
        await ctx.progress.report(2, 2, "all")
        return StageResult(artifacts=(artifact,), result={"segments": 2})

    h = Harness(body)
    outcome = await h.runner.run()
    assert outcome is not None and [e.type for e in outcome] == ["stage.completed"]
    completed = outcome[0]
    assert completed.payload.artifacts[0].name == "script.json"  # type: ignore[union-attr]
    assert completed.causation_id == h.job.event.event_id
    assert h.types() == ["stage.started", "stage.progress", "stage.progress"]
    assert [e.payload.progress for e in h.events[1:]] == [50.0, 100.0]  # type: ignore[union-attr]


async def test_transient_errors_are_retried_with_retrying_events() -> None:
    async def body(ctx: JobContext) -> StageResult:
        if ctx.attempt < 3:
            raise TransientError("gemini_unavailable", "503 from upstream")
        return StageResult()

    h = Harness(body)
    outcome = await h.runner.run()
    assert outcome is not None and outcome[0].type == "stage.completed"
    assert outcome[0].payload.attempt == 3  # type: ignore[union-attr]
    assert h.types() == [
        "stage.started",
        "stage.retrying",
        "stage.started",
        "stage.retrying",
        "stage.started",
    ]
    assert [e.payload.attempt for e in h.events if e.type == "stage.retrying"] == [2, 3]  # type: ignore[union-attr]


async def test_retries_are_exhausted_then_the_stage_and_task_fail() -> None:
    async def body(ctx: JobContext) -> StageResult:
        raise TimeoutError("read timed out")

    h = Harness(body, StagePolicy(max_attempts=2, backoff_base_s=0.0))
    outcome = await h.runner.run()
    assert outcome is not None
    assert [e.type for e in outcome] == ["stage.failed", "task.failed"]
    error = outcome[0].payload.error  # type: ignore[union-attr]
    assert error.code == "timeout" and "gave up after 2 attempts" in error.message
    assert outcome[1].payload.failed_stage is Stage.SCRIPT  # type: ignore[union-attr]
    assert h.work.calls == 2


async def test_permanent_error_fails_at_once() -> None:
    async def body(ctx: JobContext) -> StageResult:
        raise PermanentError("invalid_input", "the content is empty")

    h = Harness(body)
    outcome = await h.runner.run()
    assert outcome is not None and outcome[0].payload.error.code == "invalid_input"  # type: ignore[union-attr]
    assert h.work.calls == 1 and "stage.retrying" not in h.types()


@pytest.mark.parametrize("transient", [True, False])
async def test_an_error_too_long_for_an_event_is_cut_to_fit(transient: bool) -> None:
    """An adapter that repeats a service's answer (megabytes, or details that are no JSON
    object of the contract's size) still ends its attempt with events that carry it."""
    error = TransientError if transient else PermanentError

    async def body(ctx: JobContext) -> StageResult:
        raise error("upstream_" + "x" * 100, "answer: " + "y" * 50_000, details={"z": "z" * 10**5})

    h = Harness(body, StagePolicy(max_attempts=2, backoff_base_s=0.0))
    outcome = await h.runner.run()
    assert outcome is not None and [e.type for e in outcome] == ["stage.failed", "task.failed"]
    info = outcome[0].payload.error  # type: ignore[union-attr]
    assert info.code.startswith("upstream_x") and len(info.code) <= 64
    assert info.message.startswith("answer: yyy") and len(info.message) <= 4000
    assert info.details == {}
    assert ("gave up after 2 attempts" in info.message) is transient


async def test_a_bug_fails_as_internal_error() -> None:
    async def body(ctx: JobContext) -> StageResult:
        raise KeyError("oops")

    outcome = await Harness(body).runner.run()
    assert outcome is not None and outcome[0].payload.error.code == "internal_error"  # type: ignore[union-attr]


async def test_soft_time_limit_cancels_the_work_and_fails_with_time_limit() -> None:
    cancelled = asyncio.Event()

    async def body(ctx: JobContext) -> StageResult:
        await ctx.put("partial.bin", b"half")
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return StageResult()

    h = Harness(body, StagePolicy(soft_limit_s=0.2, hard_limit_s=1.0))
    outcome = await asyncio.wait_for(h.runner.run(), 5)
    assert outcome is not None and outcome[0].payload.error.code == "time_limit"  # type: ignore[union-attr]
    assert outcome[0].payload.error.details["limit"] == "soft"  # type: ignore[union-attr]
    assert cancelled.is_set()
    assert await h.store.list() == []  # partial artifacts removed


async def test_hard_time_limit_abandons_work_that_ignores_cancellation() -> None:
    async def body(ctx: JobContext) -> StageResult:
        try:
            await asyncio.sleep(3)
        except asyncio.CancelledError:
            await asyncio.sleep(3)  # a stubborn step that ignores the cancellation
        return StageResult()

    h = Harness(body, StagePolicy(soft_limit_s=0.1, hard_limit_s=0.3))
    started = asyncio.get_running_loop().time()
    outcome = await asyncio.wait_for(h.runner.run(), 5)
    assert asyncio.get_running_loop().time() - started < 1.5
    assert outcome is not None and outcome[0].payload.error.details["limit"] == "hard"  # type: ignore[union-attr]


async def test_cancel_stops_work_within_a_second_and_removes_partials() -> None:
    running = asyncio.Event()

    async def body(ctx: JobContext) -> StageResult:
        await ctx.put("part-1.png", b"x")
        running.set()
        await asyncio.sleep(60)
        return StageResult()

    h = Harness(body)
    task = asyncio.create_task(h.runner.run())
    await asyncio.wait_for(running.wait(), 2)
    h.job.stop(StopReason.CANCELLED)
    outcome = await asyncio.wait_for(task, 1.0)
    assert outcome is not None and [e.type for e in outcome] == [
        "stage.cancelled",
        "task.cancelled",
    ]
    assert await h.store.list() == []


async def test_hand_back_returns_nothing() -> None:
    running = asyncio.Event()

    async def body(ctx: JobContext) -> StageResult:
        running.set()
        await asyncio.sleep(60)
        return StageResult()

    h = Harness(body)
    task = asyncio.create_task(h.runner.run())
    await asyncio.wait_for(running.wait(), 2)
    h.job.stop(StopReason.HANDED_BACK)
    assert await asyncio.wait_for(task, 1.0) is None


async def test_paused_task_starts_nothing_until_resumed() -> None:
    async def body(ctx: JobContext) -> StageResult:
        return StageResult()

    h = Harness(body)
    h.control.apply(h.control_event(PauseTask))
    task = asyncio.create_task(h.runner.run())
    await asyncio.sleep(0.2)
    assert h.work.calls == 0 and h.events == []
    h.control.apply(h.control_event(ResumeTask))
    outcome = await asyncio.wait_for(task, 2)
    assert outcome is not None and outcome[0].type == "stage.completed"


async def test_cancel_while_paused_cancels_without_running() -> None:
    async def body(ctx: JobContext) -> StageResult:
        return StageResult()

    h = Harness(body)
    h.control.apply(h.control_event(PauseTask))
    task = asyncio.create_task(h.runner.run())
    await asyncio.sleep(0.05)
    h.control.apply(h.control_event(CancelTask))
    outcome = await asyncio.wait_for(task, 2)
    assert outcome is not None and outcome[0].type == "stage.cancelled" and h.work.calls == 0


@pytest.mark.parametrize("stop_during", ["backoff"])
async def test_cancel_during_backoff(stop_during: str) -> None:
    async def body(ctx: JobContext) -> StageResult:
        raise TransientError("x_unavailable", "503", retry_after_s=30)

    h = Harness(body, StagePolicy(backoff_base_s=1, backoff_max_s=60))
    task = asyncio.create_task(h.runner.run())
    await wait_until(lambda: "stage.retrying" in h.types(), timeout=2)
    h.job.stop(StopReason.CANCELLED)
    outcome = await asyncio.wait_for(task, 1.0)
    assert outcome is not None and outcome[0].type == "stage.cancelled" and h.work.calls == 1

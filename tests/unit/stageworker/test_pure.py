"""The pure parts of the stage framework: errors, backoff, commit offsets, control, progress."""

from __future__ import annotations

import asyncio
import random

import pytest

from ytmaker_shared.events import (
    CancelTask,
    ControlPayload,
    PauseTask,
    ResumeTask,
    StageProgressPayload,
)
from ytmaker_shared.stageworker import (
    Control,
    ControlBoard,
    OffsetTracker,
    PermanentError,
    ProgressReporter,
    StagePolicy,
    StageSettings,
    TransientError,
    error_for_status,
    parse_retry_after,
    percent,
)


@pytest.mark.parametrize(
    ("status", "kind", "code"),
    [
        (429, TransientError, "x_rate_limited"),
        (500, TransientError, "x_unavailable"),
        (503, TransientError, "x_unavailable"),
        (408, TransientError, "x_unavailable"),
        (400, PermanentError, "x_rejected"),
        (401, PermanentError, "x_rejected"),
        (404, PermanentError, "x_rejected"),
    ],
)
def test_http_status_classification(status: int, kind: type, code: str) -> None:
    error = error_for_status(status, "boom", service="x")
    assert isinstance(error, kind) and error.code == code and error.details["status"] == status


def test_retry_after_parsing() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") is None
    assert parse_retry_after(None) is None


def test_backoff_grows_is_capped_and_honours_retry_after() -> None:
    policy = StagePolicy(backoff_base_s=1.0, backoff_max_s=8.0)
    rng = random.Random(7)
    for attempt, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (9, 8.0)]:
        delays = [policy.backoff(attempt, rng=rng) for _ in range(200)]
        assert min(delays) >= 0 and max(delays) <= ceiling
        assert max(delays) > ceiling * 0.8  # jitter spreads over the whole range
    assert policy.backoff(1, retry_after_s=5.0, rng=rng) >= 5.0


def test_policy_validation_and_settings_overrides() -> None:
    with pytest.raises(ValueError):
        StagePolicy(soft_limit_s=10, hard_limit_s=5)
    with pytest.raises(ValueError):
        StagePolicy(max_attempts=0)
    settings = StageSettings(stage_max_attempts=5, stage_soft_time_limit_s=2.0)
    policy = settings.policy_for(StagePolicy(max_attempts=3))
    assert policy.max_attempts == 5 and policy.soft_limit_s == 2.0
    assert policy.hard_limit_s == 30 * 60.0


def test_offsets_commit_only_below_unfinished_work() -> None:
    t: OffsetTracker[str] = OffsetTracker()
    assert t.committable("p") is None
    t.begin("p", 3)
    t.begin("p", 5)
    t.handled("p", 8)  # records 0..7 handed to the handler; 3 and 5 still run
    assert t.committable("p") == 3
    t.committed("p", 3)
    assert t.committable("p") is None
    t.end("p", 5)
    assert t.committable("p") is None  # 3 still runs: 5 finishing changes nothing
    t.end("p", 3)
    assert t.committable("p") == 8
    t.committed("p", 8)
    t.forget("p")
    t.end("p", 3)  # after a revocation: ignored
    assert t.committable("p") is None


def test_offsets_duplicate_offsets_are_counted() -> None:
    t: OffsetTracker[str] = OffsetTracker()
    t.begin("p", 1)  # one trigger starts two jobs (assets: images and audio)
    t.begin("p", 1)
    t.handled("p", 2)
    t.end("p", 1)
    assert t.committable("p") == 1
    t.end("p", 1)
    assert t.committable("p") == 2


def _control(cls: type, task_id: str = "t1") -> CancelTask | PauseTask | ResumeTask:
    return cls(  # type: ignore[no-any-return]
        task_id=task_id,
        project_id="p",
        owner="o",
        producer="test",
        correlation_id="c",
        payload=ControlPayload(requested_by="o"),
    )


async def test_control_board_pause_resume_cancel_is_final() -> None:
    board = ControlBoard()
    assert board.state("t1") is Control.RUNNING
    assert board.apply(_control(PauseTask)) is Control.PAUSED
    waiter = asyncio.create_task(board.wait_until_runnable("t1"))
    await asyncio.sleep(0.01)
    assert not waiter.done()
    assert board.apply(_control(ResumeTask)) is Control.RUNNING
    assert await asyncio.wait_for(waiter, 1) is Control.RUNNING
    assert board.apply(_control(ResumeTask)) is None  # no change
    assert board.apply(_control(CancelTask)) is Control.CANCELLED
    assert board.apply(_control(ResumeTask)) is None
    assert board.state("t1") is Control.CANCELLED


def test_control_board_is_bounded() -> None:
    board = ControlBoard(capacity=2)
    for i in range(3):
        board.apply(_control(PauseTask, f"t{i}"))
    assert board.state("t0") is Control.RUNNING and board.state("t2") is Control.PAUSED


def test_percent() -> None:
    assert percent(1, 4) == 25.0
    assert percent(5, 4) == 100.0
    assert percent(1, 0) == 0.0


async def test_progress_is_throttled_monotonic_and_sends_the_latest() -> None:
    sent: list[StageProgressPayload] = []

    async def emit(p: StageProgressPayload) -> None:
        sent.append(p)

    reporter = ProgressReporter(emit, interval_s=0.2)
    for i in range(1, 50):
        await reporter.report(i, 100, f"step {i}")
    await reporter.report(10, 100)  # backwards: ignored
    assert len(sent) == 1 and sent[0].completed_steps == 1
    await asyncio.sleep(0.35)  # the trailing send carries the latest figure
    assert [p.completed_steps for p in sent] == [1, 49]
    await reporter.report(100, 100, "done")  # the last step is always sent at once
    assert sent[-1].progress == 100.0 and sent[-1].total_steps == 100
    await reporter.close()
    await reporter.report(100, 100)
    assert len(sent) == 3

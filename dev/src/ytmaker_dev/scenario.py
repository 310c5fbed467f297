"""Realistic event streams of whole runs, as the stages write them.

Used by the tests, the integration tests and the benchmarks to feed the fold; pure (no I/O).
`run_events(...)` returns `(topic, event)` pairs in the order the pipeline would write them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from ytmaker_shared.events import (
    CancelTask,
    ControlPayload,
    ErrorInfo,
    Event,
    PauseTask,
    ResumeTask,
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
    TaskRequested,
    TaskRequestedPayload,
)
from ytmaker_shared.stages import ASSET_STAGES, Stage
from ytmaker_shared.topics import STAGE_TOPIC, Topic

Ending = Literal["completed", "failed", "cancelled"]


@dataclass
class _Clock:
    now: datetime

    def tick(self, seconds: float = 1.0) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


def run_events(
    task_id: str,
    *,
    project_id: str | None = None,
    owner: str = "alice",
    steps: int = 3,
    ending: Ending = "completed",
    retry_stage: Stage | None = None,
    pause: bool = False,
    start: datetime | None = None,
    stage_seconds: float = 10.0,
) -> list[tuple[Topic, Event]]:
    """One run's events. `steps` progress events per stage; `retry_stage` fails once and is
    retried; `pause` pauses and resumes during the script; `ending` says how the run ends
    (`failed` fails at render, `cancelled` is cancelled during the assets)."""
    clock = _Clock(start or datetime(2026, 1, 1, tzinfo=UTC))
    requested = TaskRequested(
        task_id=task_id,
        project_id=project_id or f"p-{task_id}",
        owner=owner,
        producer="gateway",
        correlation_id=task_id,
        occurred_at=clock.now,
        payload=TaskRequestedPayload(title=f"Video {task_id}", content="Some text about owls."),
    )
    out: list[tuple[Topic, Event]] = [(Topic.TASKS, requested)]

    def stage_run(stage: Stage, fail: bool = False) -> None:
        topic, prod = STAGE_TOPIC[stage], f"{stage}-worker"
        attempts = 2 if stage == retry_stage else 1
        for attempt in range(1, attempts + 1):
            if attempt > 1:
                out.append(
                    (
                        topic,
                        requested.caused(
                            StageRetrying,
                            producer=prod,
                            stage=stage,
                            occurred_at=clock.tick(),
                            payload=StageRetryingPayload(
                                attempt=attempt, delay_seconds=1, error=_error("flaky")
                            ),
                        ),
                    )
                )
            started = StageStartedPayload(attempt=attempt)
            out.append(
                (
                    topic,
                    requested.caused(
                        StageStarted,
                        producer=prod,
                        stage=stage,
                        occurred_at=clock.tick(),
                        payload=started,
                    ),
                )
            )
            for i in range(1, steps + 1):
                fraction = i / (steps + 1)
                payload = StageProgressPayload(
                    progress=round(100 * fraction, 2),
                    message=f"{stage} step {i}",
                    current_step=f"step {i}",
                    completed_steps=i,
                    total_steps=steps,
                    attempt=attempt,
                )
                out.append(
                    (
                        topic,
                        requested.caused(
                            StageProgressed,
                            producer=prod,
                            stage=stage,
                            occurred_at=clock.tick(stage_seconds / (steps + 1)),
                            payload=payload,
                        ),
                    )
                )
                if pause and stage is Stage.SCRIPT and i == 1:
                    controls: tuple[type[PauseTask] | type[ResumeTask], ...] = (
                        PauseTask,
                        ResumeTask,
                    )
                    for control in controls:
                        out.append(
                            (
                                Topic.CONTROL,
                                requested.caused(
                                    control,
                                    producer="gateway",
                                    occurred_at=clock.tick(),
                                    payload=ControlPayload(requested_by=owner),
                                ),
                            )
                        )
            if fail or attempt < attempts:
                out.append(
                    (
                        topic,
                        requested.caused(
                            StageFailed,
                            producer=prod,
                            stage=stage,
                            occurred_at=clock.tick(),
                            payload=StageFailedPayload(error=_error("boom"), attempt=attempt),
                        ),
                    )
                )
                continue
            out.append(
                (
                    topic,
                    requested.caused(
                        StageCompleted,
                        producer=prod,
                        stage=stage,
                        occurred_at=clock.tick(),
                        payload=StageCompletedPayload(attempt=attempt, message=f"{stage} done"),
                    ),
                )
            )

    stage_run(Stage.SCRIPT)
    if ending == "cancelled":
        out.append(
            (
                Topic.CONTROL,
                requested.caused(
                    CancelTask,
                    producer="gateway",
                    occurred_at=clock.tick(),
                    payload=ControlPayload(requested_by=owner),
                ),
            )
        )
        out.append(
            (
                Topic.TASKS,
                requested.caused(
                    TaskCancelled,
                    producer="assets",
                    occurred_at=clock.tick(),
                    payload=TaskCancelledPayload(reason="cancelled by the user"),
                ),
            )
        )
        return out
    for stage in sorted(ASSET_STAGES):
        stage_run(stage)
    if ending == "failed":
        stage_run(Stage.RENDER, fail=True)
        out.append(
            (
                Topic.TASKS,
                requested.caused(
                    TaskFailed,
                    producer="render",
                    occurred_at=clock.tick(),
                    payload=TaskFailedPayload(error=_error("boom"), failed_stage=Stage.RENDER),
                ),
            )
        )
        return out
    stage_run(Stage.RENDER)
    stage_run(Stage.UPLOAD)
    out.append(
        (
            Topic.TASKS,
            requested.caused(
                TaskCompleted,
                producer="upload",
                occurred_at=clock.tick(),
                payload=TaskCompletedPayload(result={"video": f"file:///videos/{task_id}.mp4"}),
            ),
        )
    )
    return out


def _error(code: str) -> ErrorInfo:
    return ErrorInfo(code=code, message=f"{code} happened")

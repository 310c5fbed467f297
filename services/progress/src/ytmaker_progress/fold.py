"""The progress fold: `apply(state, event) -> (state, updates)`, pure, no I/O.

A task's `Folded` state is its client-visible `TaskState` plus what the fold needs to stay
idempotent: the ids of the events it applied last (a duplicate of one of them changes nothing)
and how many events arrived after the task had finished (kept in the log, counted, ignored).

Rules, all of them order-tolerant because the events of one task arrive from six topics:
- a stage's attempt only grows; an event of an older attempt is stale and changes nothing;
- within one attempt a stage's progress only grows (a late, lower figure changes nothing);
- the overall figure is `Σ weight × stage_progress / 100` and never decreases: a retried
  stage resets its own progress, not the overall figure;
- `completed`, `failed` and `cancelled` are final.

An event yields at most one update, and only when something a client sees has changed; the
update carries the full state, so a client can render from any single message.

The state it folds into is `folded.py`'s plain dataclasses, not the contract's pydantic models
(docs/decisions/0028-fold-cpu.md).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from ytmaker_progress.eta import EtaEstimated
from ytmaker_progress.folded import Changes, Folded, StageRun, Task, Update
from ytmaker_shared.events import (
    CancelTask,
    Event,
    PauseTask,
    ResumeTask,
    StageCancelled,
    StageCompleted,
    StageEvent,
    StageFailed,
    StageProgressed,
    StageRetrying,
    StageStarted,
    TaskCancelled,
    TaskCompleted,
    TaskFailed,
    TaskRequested,
)
from ytmaker_shared.progress import (
    DONE_STAGE_STATUSES,
    FINISHED_STAGE_STATUSES,
    StageStatus,
    TaskStatus,
    UpdateType,
)
from ytmaker_shared.stages import STAGE_WEIGHTS, Stage

#: How many recent event ids a task remembers to drop duplicates (a redelivery or a producer
#: that sent twice). Older duplicates are still harmless for stage events (attempts and
#: progress only grow); see docs/decisions/0021-progress-fold-idempotence.md.
DEDUPE_WINDOW = 64

#: Events whose update is an `error` (by exact type, as `_RULES`: isinstance on pydantic
#: models goes through their metaclass, 5× slower).
_ERROR_EVENTS: tuple[type[Any], ...] = (StageFailed, StageRetrying, TaskFailed)

_PENDING = StageRun()


#: What the fold folds: the pipeline's events and the ETA projector's estimates.
Input = Event | EtaEstimated


def apply(state: Folded | None, event: Input) -> tuple[Folded, list[Update]]:
    """Fold one event of a task into its state (None for a task not seen yet).

    Returns the new state and the updates to publish (zero or one). The caller must pass
    only events of `state`'s task. Never raises for a valid event.
    """
    if state is None:
        state = Folded(task=_new_task(event))
    if event.event_id in state.recent_ids:
        return state, []
    seen = (*state.recent_ids, event.event_id)[-DEDUPE_WINDOW:]
    old = state.task
    if old.status.terminal:
        return Folded(task=old, recent_ids=seen, ignored=state.ignored + 1), []
    # A rule names the fields it sets; only those that differ are a visible change.
    changes = {
        name: value
        for name, value in _RULES[type(event)](old, event).items()
        if getattr(old, name) != value
    }
    if not changes:
        return Folded(task=old, recent_ids=seen, ignored=state.ignored), []
    status = changes.get("status", old.status)
    changes["progress"] = max(old.progress, _overall(changes.get("stages", old.stages)))
    if status is TaskStatus.COMPLETED:
        changes["progress"] = changes["sub_progress"] = 100.0
    if status.terminal:
        changes["eta_seconds"] = None
    changes["last_event_id"] = event.event_id
    changes["updated_at"] = max(old.updated_at or event.occurred_at, event.occurred_at)
    new = old.changed(changes)
    update = Update(
        type=_update_type(old.status, status, event),
        task_id=new.task_id,
        project_id=new.project_id,
        owner=new.owner,
        event_id=event.event_id,
        event_type=event.type,
        occurred_at=event.occurred_at,
        state=new,
    )
    return Folded(task=new, recent_ids=seen, ignored=state.ignored), [update]


def _new_task(event: Input) -> Task:
    return Task(
        task_id=event.task_id,
        project_id=event.project_id,
        owner=event.owner,
        created_at=event.occurred_at,
    )


def _overall(stages: Mapping[Stage, StageRun]) -> float:
    """Σ weight × stage_progress / 100 over every stage."""
    total = 0.0  # a loop rather than sum(generator): the same additions, in half the time
    for stage, st in stages.items():
        total += STAGE_WEIGHTS[stage] * (100.0 if st.status in DONE_STAGE_STATUSES else st.progress)
    return min(100.0, round(total / 100.0, 4))


def _update_type(old: TaskStatus, new: TaskStatus, event: Input) -> UpdateType:
    if type(event) in _ERROR_EVENTS:
        return UpdateType.ERROR
    if old is not new:
        return UpdateType.STATUS
    return UpdateType.PROGRESS


# --- task events: each rule returns the fields it sets (`Changes`) ----------------------


def _requested(task: Task, event: TaskRequested) -> Changes:
    created = min(task.created_at or event.occurred_at, event.occurred_at)
    return {"title": event.payload.title, "created_at": created}


def _completed(task: Task, event: TaskCompleted) -> Changes:
    return {
        "status": TaskStatus.COMPLETED,
        "message": event.payload.message,
        "result": event.payload.result,
        "error": None,
    }


def _failed(task: Task, event: TaskFailed) -> Changes:
    return {
        "status": TaskStatus.FAILED,
        "error": event.payload.error,
        "message": event.payload.error.message,
    }


def _cancelled(task: Task, event: TaskCancelled) -> Changes:
    return {"status": TaskStatus.CANCELLED, "message": event.payload.reason or "cancelled"}


def _cancel_requested(task: Task, event: CancelTask) -> Changes:
    return {"message": "cancellation requested"}


def _pause_requested(task: Task, event: PauseTask) -> Changes:
    return {"status": TaskStatus.PAUSED, "message": "paused"}


def _resume_requested(task: Task, event: ResumeTask) -> Changes:
    if task.status is not TaskStatus.PAUSED:
        return {}
    started = any(st.status is not StageStatus.PENDING for st in task.stages.values())
    status = TaskStatus.RUNNING if started else TaskStatus.QUEUED
    return {"status": status, "message": "resumed"}


def _eta_estimated(task: Task, event: EtaEstimated) -> Changes:
    return {"eta_seconds": event.eta_seconds}


# --- stage events ------------------------------------------------------------------------


def _with_stage(
    task: Task, event: StageEvent, stage_state: StageRun | None, **fields: Any
) -> Changes:
    """The changes that set `event.stage` to `stage_state` (None: the event is stale)."""
    if stage_state is None:
        return {}
    status = task.status
    if status is TaskStatus.QUEUED and stage_state.status is not StageStatus.PENDING:
        status = TaskStatus.RUNNING
    return {
        "stages": {**task.stages, event.stage: stage_state},
        "stage": event.stage,
        "sub_progress": stage_state.progress,
        "status": status,
        **fields,
    }


def _stage(task: Task, stage: Stage) -> StageRun:
    return task.stages.get(stage) or _PENDING


def _attempt_started(attempt: int, at: datetime, progress: float = 0.0) -> StageRun:
    return StageRun(status=StageStatus.RUNNING, attempt=attempt, progress=progress, started_at=at)


def _stage_started(task: Task, event: StageStarted) -> Changes:
    st, attempt = _stage(task, event.stage), event.payload.attempt
    if attempt > st.attempt or (
        attempt == st.attempt and st.status in (StageStatus.PENDING, StageStatus.RETRYING)
    ):
        return _with_stage(
            task,
            event,
            _attempt_started(attempt, event.occurred_at),
            message=event.payload.message or f"{event.stage} started",
            current_step=None,
            total_steps=None,
            completed_steps=None,
        )
    return {}


def _stage_progressed(task: Task, event: StageProgressed) -> Changes:
    st, p = _stage(task, event.stage), event.payload
    if p.attempt > st.attempt or (p.attempt == st.attempt and st.status is StageStatus.PENDING):
        new = _attempt_started(p.attempt, event.occurred_at, p.progress)
    elif (
        p.attempt == st.attempt
        and st.status not in FINISHED_STAGE_STATUSES
        and p.progress >= st.progress
    ):
        new = StageRun(
            status=StageStatus.RUNNING,
            progress=p.progress,
            attempt=st.attempt,
            started_at=st.started_at or event.occurred_at,
            finished_at=st.finished_at,
        )
    else:
        return {}
    return _with_stage(
        task,
        event,
        new,
        message=p.message or task.message,
        current_step=p.current_step if p.current_step is not None else task.current_step,
        total_steps=p.total_steps if p.total_steps is not None else task.total_steps,
        completed_steps=p.completed_steps
        if p.completed_steps is not None
        else task.completed_steps,
    )


def _stage_completed(task: Task, event: StageCompleted) -> Changes:
    st, p = _stage(task, event.stage), event.payload
    if p.attempt < st.attempt or st.status in DONE_STAGE_STATUSES:
        return {}
    status = StageStatus.SKIPPED if p.status == "skipped" else StageStatus.COMPLETED
    new = StageRun(
        status=status,
        progress=100.0,
        attempt=max(p.attempt, st.attempt),
        started_at=st.started_at or event.occurred_at,
        finished_at=event.occurred_at,
    )
    return _with_stage(task, event, new, message=p.message or f"{event.stage} {status}", error=None)


def _stage_failed(task: Task, event: StageFailed) -> Changes:
    st, p = _stage(task, event.stage), event.payload
    if p.attempt < st.attempt or st.status in FINISHED_STAGE_STATUSES:
        return {}
    new = replace(
        st,
        status=StageStatus.FAILED,
        attempt=p.attempt,
        finished_at=event.occurred_at,
        started_at=st.started_at or event.occurred_at,
    )
    return _with_stage(task, event, new, error=p.error, message=p.error.message)


def _stage_retrying(task: Task, event: StageRetrying) -> Changes:
    st, p = _stage(task, event.stage), event.payload
    if p.attempt <= st.attempt or st.status in DONE_STAGE_STATUSES:
        return {}
    new = StageRun(status=StageStatus.RETRYING, attempt=p.attempt)
    message = f"{event.stage} retrying (attempt {p.attempt}) in {p.delay_seconds:g}s"
    return _with_stage(task, event, new, error=p.error, message=message)


def _stage_cancelled(task: Task, event: StageCancelled) -> Changes:
    st = _stage(task, event.stage)
    if st.status in FINISHED_STAGE_STATUSES:
        return {}
    new = replace(st, status=StageStatus.CANCELLED, finished_at=event.occurred_at)
    return _with_stage(
        task, event, new, message=event.payload.message or f"{event.stage} cancelled"
    )


_RULES: dict[type[Any], Callable[[Task, Any], Changes]] = {
    TaskRequested: _requested,
    TaskCompleted: _completed,
    TaskFailed: _failed,
    TaskCancelled: _cancelled,
    CancelTask: _cancel_requested,
    PauseTask: _pause_requested,
    ResumeTask: _resume_requested,
    StageStarted: _stage_started,
    StageProgressed: _stage_progressed,
    StageCompleted: _stage_completed,
    StageFailed: _stage_failed,
    StageRetrying: _stage_retrying,
    StageCancelled: _stage_cancelled,
    EtaEstimated: _eta_estimated,
}


__all__ = ["DEDUPE_WINDOW", "Folded", "Input", "StageRun", "Task", "Update", "apply"]

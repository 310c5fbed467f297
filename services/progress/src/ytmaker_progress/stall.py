"""Stalled tasks: pure rules, no I/O (the loop is `runners/stall.py`).

No task stays `running` for ever. A queued or running task waits on some stages: those
running or retrying, or else those whose inputs have all completed and that have not started.
When none of its updates has come for longer than the longest hard time limit of those stages
plus a grace, the task has stalled (a stage service that died with the work, a lost trigger):
it is failed with the error code `stalled` and a message naming the stage, by an event in the
log, so that the fold, the read model and every client see it; a cancel on `pipeline.control`
stops whatever stage instance still holds the work.

Silence is counted from the task's latest update, or from when the watch started if that is
later: after a downtime of the whole system the stages get their time again. The latest update
is as late as the read model's clock allows: one dated after the read model stored it (a
producer's clock far ahead, a hostile event; the fold keeps a task's latest time) counts from
when it was stored (`silent_since`, `Store.silent_tasks`), or its task could not stall before
that future came (decision 0124).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ytmaker_shared.events import (
    CancelTask,
    ControlPayload,
    ErrorInfo,
    TaskFailed,
    TaskFailedPayload,
)
from ytmaker_shared.events.envelope import derived_event_id
from ytmaker_shared.progress import ACTIVE_STAGE_STATUSES, DONE_STAGE_STATUSES
from ytmaker_shared.stages import STAGE_INPUTS, Stage

STALLED = "stalled"


@dataclass(frozen=True)
class StallPolicy:
    """Each stage's hard time limit (`limits_s`, else `default_limit_s`) and the grace."""

    default_limit_s: float = 30 * 60.0
    limits_s: Mapping[str, float] = field(default_factory=dict)
    grace_s: float = 5 * 60.0

    def limit_s(self, stage: Stage) -> float:
        return self.limits_s.get(stage.value, self.default_limit_s)


@dataclass(frozen=True)
class Stall:
    task_id: str
    stage: Stage
    silent_s: float
    allowed_s: float


def awaited_stages(state: Mapping[str, Any]) -> list[Stage]:
    """The stages a queued or running task waits on (see the module docstring)."""
    stages: Mapping[str, Any] = state.get("stages") or {}
    status = {stage: (stages.get(stage.value) or {}).get("status", "pending") for stage in Stage}
    active = [stage for stage in Stage if status[stage] in ACTIVE_STAGE_STATUSES]
    if active:
        return active
    return [
        stage
        for stage in Stage
        if status[stage] == "pending"
        and all(status[i] in DONE_STAGE_STATUSES for i in STAGE_INPUTS[stage])
    ]


def stalled(
    state: Mapping[str, Any], now: datetime, watching_since: datetime, policy: StallPolicy
) -> Stall | None:
    """The task's stall, or None while it may still be waiting legitimately."""
    if state.get("status") not in ("queued", "running"):
        return None
    waiting_on = awaited_stages(state)
    if not waiting_on:
        return None
    since = _time(state.get("silent_since") or state["updated_at"])
    silent_s = (now - max(since, watching_since)).total_seconds()
    stage = max(waiting_on, key=policy.limit_s)
    allowed_s = policy.limit_s(stage) + policy.grace_s
    if silent_s <= allowed_s:
        return None
    return Stall(state["task_id"], stage, silent_s, allowed_s)


def _time(value: Any) -> datetime:
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def stall_events(
    state: Mapping[str, Any], stall: Stall, producer: str
) -> tuple[TaskFailed, CancelTask]:
    """The task's `task.failed` (code `stalled`) and the cancel that stops its stages. Their
    ids derive from the task's latest update, so watches in several processes write events
    the fold takes once."""
    minutes = stall.silent_s / 60
    error = ErrorInfo(
        code=STALLED,
        message=f"{stall.stage} has been silent for {minutes:.0f} min, longer than its time "
        f"limit plus grace ({stall.allowed_s / 60:.0f} min): the task stalled",
        details={"stage": stall.stage.value, "silent_s": round(stall.silent_s)},
    )
    seed = f"{stall.task_id}/{state.get('last_event_id')}/{STALLED}"
    # The update's own time, not when a read model stored it: every watch, whatever its
    # database, derives the same ids.
    millis = int(_time(state["updated_at"]).timestamp() * 1000)
    common: dict[str, Any] = {
        "task_id": stall.task_id,
        "project_id": state["project_id"],
        "owner": state["owner"],
        "producer": producer,
        "correlation_id": stall.task_id,
        "causation_id": state.get("last_event_id"),
    }
    failed = TaskFailed(
        **common,
        event_id=derived_event_id(millis, seed + "/failed"),
        payload=TaskFailedPayload(error=error, failed_stage=stall.stage),
    )
    cancel = CancelTask(
        **common,
        event_id=derived_event_id(millis, seed + "/cancel"),
        payload=ControlPayload(requested_by=producer, reason=error.message),
    )
    return failed, cancel

"""Time left of a running task, from how long each stage took recently (pure).

The averages come from the stage window (`window.StageWindow`, in the ETA projector) or the
read model: completed stage attempts finished within the last hour
(`YTMAKER_PROGRESS_ETA_WINDOW_S`). Asset stages run in parallel, so they
count as the slowest of them; a stage's own progress shortens its share.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from ytmaker_shared.events import new_event_id, utcnow
from ytmaker_shared.events.envelope import (
    ID_MAX_LENGTH,
    OWNER_MAX_LENGTH,
    TASK_ID_MAX_LENGTH,
    Frozen,
)
from ytmaker_shared.progress import ACTIVE_STATUSES, DONE_STAGE_STATUSES
from ytmaker_shared.stages import ASSET_STAGES, Stage

_SEQUENCE = (Stage.SCRIPT, ASSET_STAGES, Stage.RENDER, Stage.UPLOAD)


def estimate(state: Mapping[str, Any], averages: Mapping[str, float]) -> float | None:
    """Seconds left for a queued, running or paused task (a TaskState as JSON); None when a
    stage still to run has no recent duration, or the task has finished."""
    if state.get("status") not in ACTIVE_STATUSES:
        return None
    stages: Mapping[str, Any] = state.get("stages") or {}
    total = 0.0
    for step in _SEQUENCE:
        group = sorted(step) if isinstance(step, frozenset) else [step]
        left: list[float] = []
        for stage in group:
            st = stages.get(stage.value) or {}
            if st.get("status") in DONE_STAGE_STATUSES:
                continue
            if stage.value not in averages:
                return None
            done = float(st.get("progress") or 0.0) / 100  # null: not started
            left.append(averages[stage.value] * (1 - done))
        total += max(left, default=0.0)
    return round(total, 1)


class EtaEstimated(Frozen):
    """A record of `progress.eta` (keyed by task_id): the time left of a task, estimated by
    the ETA projector from the stage window. An input of the fold like a pipeline event, so
    the fold stays a pure function of its log (docs/decisions/0024-eta-window.md)."""

    event_id: str = Field(default_factory=new_event_id, min_length=1, max_length=ID_MAX_LENGTH)
    type: Literal["task.eta_estimated"] = "task.eta_estimated"
    schema_version: Literal[1] = 1
    task_id: str = Field(min_length=1, max_length=TASK_ID_MAX_LENGTH)
    project_id: str = Field(min_length=1, max_length=ID_MAX_LENGTH)
    owner: str = Field(min_length=1, max_length=OWNER_MAX_LENGTH)
    occurred_at: datetime = Field(default_factory=utcnow)
    eta_seconds: float = Field(ge=0)
    based_on_offset: int = Field(
        ge=0, le=2**63 - 1, description="The update of the task it was made from."
    )


def significant(old: float | None, new: float) -> bool:
    """Whether a new estimate is worth an update: the first one, or 5 s and 10 % away."""
    return old is None or abs(new - old) >= max(5.0, 0.1 * old)

"""The contract of what clients see: a task's state and the updates on
`progress.updates` (one per client-visible change) and `progress.state` (compacted, latest
state per task, keyed by task_id).

An update's offset is its Kafka offset in `progress.updates`; it is not inside the message (it
is only known once written), so readers attach it from the record: `state.offset` and
`epoch` are filled by whoever reads the update, never by the fold.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import Field

from ytmaker_shared.events.envelope import (
    ID_MAX_LENGTH,
    OWNER_MAX_LENGTH,
    TASK_ID_MAX_LENGTH,
    Frozen,
    SmallJson,
    Text,
)
from ytmaker_shared.events.stages import MAX_ATTEMPT, MAX_STEPS, STEP_MAX_LENGTH
from ytmaker_shared.events.tasks import TITLE_MAX_LENGTH, ErrorInfo
from ytmaker_shared.stages import Stage


class TaskStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_STATUSES


#: A task's statuses: final ones, and those of a task still under way.
TERMINAL_STATUSES = frozenset({TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED})
ACTIVE_STATUSES = frozenset({TaskStatus.QUEUED, TaskStatus.RUNNING, TaskStatus.PAUSED})


class StageStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    RETRYING = "retrying"
    COMPLETED = "completed"
    SKIPPED = "skipped"
    FAILED = "failed"
    CANCELLED = "cancelled"


#: A stage's statuses: its output exists (done); it will not run again in this attempt
#: (finished); it is at work (active). Members compare equal to their strings.
DONE_STAGE_STATUSES = frozenset({StageStatus.COMPLETED, StageStatus.SKIPPED})
FINISHED_STAGE_STATUSES = DONE_STAGE_STATUSES | {StageStatus.FAILED, StageStatus.CANCELLED}
ACTIVE_STAGE_STATUSES = frozenset({StageStatus.RUNNING, StageStatus.RETRYING})


class StageState(Frozen):
    status: StageStatus = StageStatus.PENDING
    progress: float = Field(default=0.0, ge=0, le=100)
    attempt: int = Field(default=0, ge=0, le=MAX_ATTEMPT)
    started_at: datetime | None = None
    finished_at: datetime | None = None


# Bounded as the events it is folded from are, so that whatever reads a state from a topic (the
# fold's restore, the gateway, the clients) refuses one the fold could not have written: a
# hostile record must not make a state that the fold then fails to write back.
class TaskState(Frozen):
    """Everything a client needs to render a task from any single message."""

    task_id: str = Field(max_length=TASK_ID_MAX_LENGTH)
    project_id: str = Field(max_length=ID_MAX_LENGTH)
    owner: str = Field(max_length=OWNER_MAX_LENGTH)
    title: str = Field(default="", max_length=TITLE_MAX_LENGTH)
    status: TaskStatus = TaskStatus.QUEUED
    stage: Stage | None = None
    progress: float = Field(default=0.0, ge=0, le=100, description="Overall, never decreases.")
    sub_progress: float = Field(default=0.0, ge=0, le=100, description="Of the current stage.")
    current_step: str | None = Field(default=None, max_length=STEP_MAX_LENGTH)
    total_steps: int | None = Field(default=None, ge=0, le=MAX_STEPS)
    completed_steps: int | None = Field(default=None, ge=0, le=MAX_STEPS)
    message: Text = ""
    error: ErrorInfo | None = None
    result: SmallJson | None = None
    stages: dict[Stage, StageState] = Field(default_factory=dict)
    eta_seconds: float | None = Field(default=None, ge=0)
    created_at: datetime | None = None
    updated_at: datetime | None = None
    last_event_id: str | None = Field(default=None, max_length=ID_MAX_LENGTH)
    offset: int | None = Field(
        default=None, ge=0, le=2**63 - 1, description="Filled by readers, see module doc."
    )
    epoch: str | None = Field(
        default=None, max_length=ID_MAX_LENGTH, description="Filled by readers, see module doc."
    )


class UpdateType(StrEnum):
    PROGRESS = "progress"
    STATUS = "status"
    ERROR = "error"


class ProgressUpdate(Frozen):
    """One message on `progress.updates`, keyed by task_id."""

    type: UpdateType
    task_id: str
    project_id: str
    owner: str
    event_id: str = Field(description="The pipeline event that caused this update.")
    event_type: str
    occurred_at: datetime = Field(description="When the causing event happened.")
    state: TaskState
    schema_version: Literal[1] = 1

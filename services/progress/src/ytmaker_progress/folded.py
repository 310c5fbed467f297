"""A task's state as the fold holds it: plain dataclasses with the fields of the contract's
models (`Task` ~ `TaskState`, `StageRun` ~ `StageState`, `Update` ~ `ProgressUpdate`) and the
fold's bookkeeping (`Folded`). pydantic's copies and comparisons cost more than the fold's
rules themselves; `records` writes the same JSON from these with orjson
(docs/decisions/0028-fold-cpu.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from ytmaker_shared.events import ErrorInfo
from ytmaker_shared.progress import ProgressUpdate, StageStatus, TaskState, TaskStatus, UpdateType
from ytmaker_shared.stages import Stage

#: The fields of `TaskState` a rule sets (an empty dict: the event changes nothing).
Changes = dict[str, Any]


# StageRun and Update are values, never changed once made, but not frozen (a frozen dataclass
# is 3× slower to make) and not slotted (orjson writes a dataclass from its __dict__ 3× faster).


@dataclass
class StageRun:
    """A stage's `StageState`, as the fold holds it."""

    status: StageStatus = StageStatus.PENDING
    progress: float = 0.0
    attempt: int = 0
    started_at: datetime | None = None
    finished_at: datetime | None = None


@dataclass(frozen=True)
class Task:
    """A task's `TaskState`, as the fold holds it: the same fields, in the same order."""

    task_id: str
    project_id: str
    owner: str
    title: str = ""
    status: TaskStatus = TaskStatus.QUEUED
    stage: Stage | None = None
    progress: float = 0.0
    sub_progress: float = 0.0
    current_step: str | None = None
    total_steps: int | None = None
    completed_steps: int | None = None
    message: str = ""
    error: ErrorInfo | None = None
    result: dict[str, Any] | None = None
    stages: dict[Stage, StageRun] = field(default_factory=dict)
    eta_seconds: float | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    last_event_id: str | None = None
    offset: int | None = None
    epoch: str | None = None

    @classmethod
    def from_model(cls, state: TaskState) -> Task:
        stages = {stage: StageRun(**dict(st)) for stage, st in state.stages.items()}
        return cls(**{**dict(state), "stages": stages})

    def model(self) -> TaskState:
        return TaskState.model_validate(self, from_attributes=True)

    def changed(self, changes: Changes) -> Task:
        """A copy with `changes` (field → value) applied. `dataclasses.replace` would run
        `__init__` over all 21 fields; in the hot path a dict merge is enough."""
        new = object.__new__(Task)
        new.__dict__.update(self.__dict__)
        new.__dict__.update(changes)
        return new


@dataclass
class Update:
    """A `ProgressUpdate`, as the fold makes it; `records.encode_update` writes its JSON."""

    type: UpdateType
    task_id: str
    project_id: str
    owner: str
    event_id: str
    event_type: str
    occurred_at: datetime
    state: Task
    schema_version: int = 1

    def model(self) -> ProgressUpdate:
        return ProgressUpdate.model_validate(self, from_attributes=True)

    def model_dump(self, mode: str = "python") -> dict[str, Any]:
        """`ProgressUpdate.model_dump`: what a reader of the update sees (for tests)."""
        return self.model().model_dump(mode=mode)


class Folded(NamedTuple):  # immutable like a frozen dataclass, and 2× cheaper to make
    """One task's fold state. `task` is what clients see; the rest is bookkeeping."""

    task: Task
    recent_ids: tuple[str, ...] = ()
    ignored: int = 0

"""Typed answers of the gateway (docs/protocol.md), built on the shared contracts: a task's state
is `ytmaker_shared.progress.TaskState`, a stored update `ProgressUpdate`, a project's settings
`ytmaker_shared.events.ProjectSettings`.

What the live stream delivers is an `Update` (one update of the task's log, with its offset)
or a `Snapshot` (the task's state where the log could not be replayed: `recovered` False).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from ytmaker_shared.events import ProjectSettings
from ytmaker_shared.progress import (
    TERMINAL_STATUSES,
    ProgressUpdate,
    StageState,
    StageStatus,
    TaskState,
    TaskStatus,
    UpdateType,
)
from ytmaker_shared.stages import STAGE_WEIGHTS, Stage

__all__ = [
    "STAGE_WEIGHTS",
    "ActiveClients",
    "ControlResult",
    "History",
    "HistoryItem",
    "Item",
    "LocalClients",
    "ProgressUpdate",
    "Project",
    "ProjectSettings",
    "ProjectView",
    "RunList",
    "Snapshot",
    "Stage",
    "StageState",
    "StageStatus",
    "Started",
    "Stats",
    "TaskState",
    "TaskStatus",
    "Update",
    "UpdateType",
    "WebSocketStats",
    "task_state",
]


class _Answer(BaseModel):
    """An answer of the gateway: fields it adds in a later version are ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class Started(_Answer):
    """`POST /projects` and `POST /projects/{id}/tasks`."""

    project_id: str
    task_id: str
    ws_url: str
    page_url: str


class ControlResult(_Answer):
    """`POST /tasks/{id}/cancel|pause|resume` (202)."""

    task_id: str
    action: Literal["cancel", "pause", "resume"]
    accepted: bool
    event_id: str


class ArtifactLink(_Answer):
    """`GET /artifacts/{id}/{name}/link`: `url` opens the artifact without the token until
    `expires_at` (`RestClient.artifact_link` gives it with the gateway's address in front)."""

    url: str
    expires_at: datetime


class Project(_Answer):
    project_id: str
    owner: str
    title: str
    content: str = ""
    settings: ProjectSettings = ProjectSettings()
    created_at: datetime | None = None


class ProjectView(_Answer):
    """`GET /projects/{id}`: the project and its tasks, newest first."""

    project: Project
    tasks: list[TaskState]


class RunList(_Answer):
    """`GET /runs`: the caller's runs (every user's for an operator who asks), newest
    first."""

    items: list[TaskState]


class HistoryItem(_Answer):
    offset: int
    epoch: str | None = None
    update: ProgressUpdate


class History(_Answer):
    """`GET /progress/{id}/history[/db]`: updates in offset order."""

    task_id: str
    source: Literal["memory", "database"]
    items: list[HistoryItem]


class Stats(_Answer):
    model_config = ConfigDict(extra="allow", frozen=True)

    total_tasks: int
    active_tasks: int
    completed_tasks: int
    failed_tasks: int
    cancelled_tasks: int


class LocalClients(_Answer):
    """One gateway instance's connected clients."""

    model_config = ConfigDict(extra="allow", frozen=True)

    total_clients: int
    by_user: dict[str, int]
    by_project: dict[str, int]


class ActiveClients(_Answer):
    """`GET /progress/active` (operator): this instance's clients, and every instance's
    active sessions from the read model."""

    model_config = ConfigDict(extra="allow", frozen=True)

    instance: str
    local: LocalClients
    total_clients: int
    by_user: dict[str, int]
    sessions: list[dict[str, Any]] = []


class WebSocketStats(LocalClients):
    """`GET /websocket/stats` (operator): this instance's clients, messages and reconnects."""

    instance: str
    messages_sent: int
    reconnects: int
    reconnects_restored: int
    fanout: dict[str, Any]


_STATE_FIELDS = frozenset(TaskState.model_fields)


def task_state(data: dict[str, Any]) -> TaskState:
    """A `TaskState` from a state payload that may carry more (an update's `event_id`, ...,
    or fields of a newer gateway). Raises pydantic.ValidationError for a payload that is not
    a state."""
    return TaskState.model_validate({k: v for k, v in data.items() if k in _STATE_FIELDS})


@dataclass(frozen=True)
class Update:
    """One update of a task's log (`progress`, `status` or `error`), delivered once, in
    offset order. `state` is the task's whole state after it."""

    type: UpdateType
    task_id: str
    offset: int
    epoch: str | None
    event_id: str
    event_type: str
    occurred_at: datetime | None
    state: TaskState

    @property
    def terminal(self) -> bool:
        return self.state.status in TERMINAL_STATUSES


@dataclass(frozen=True)
class Snapshot:
    """The task's state at `offset`, sent instead of a replay.

    `recovered` is the gateway's word: False means the log could not be replayed from where
    this subscription asked (a first subscribe without `since`, or an offset no longer held).
    `missed` is True when updates were lost for this subscription: it had asked to resume
    from `requested_since` and the gateway could not replay from there. `state` is None only
    when the gateway had no state to send (a task not folded yet)."""

    task_id: str
    offset: int | None
    epoch: str | None
    state: TaskState | None
    recovered: bool
    requested_since: int | None

    @property
    def missed(self) -> bool:
        return not self.recovered and self.requested_since is not None

    @property
    def terminal(self) -> bool:
        return self.state is not None and self.state.status in TERMINAL_STATUSES


Item = Update | Snapshot

"""The `pipeline.tasks` stream: a run is requested, and how it ended."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ytmaker_shared.events.envelope import Envelope, Frozen, SmallJson, Text
from ytmaker_shared.stages import Stage


class ProjectSettings(Frozen):
    """How the user wants the video made and published."""

    language: str = Field(default="en", pattern=r"^[a-z]{2}(-[A-Z]{2})?$")
    target_length_seconds: int = Field(default=60, ge=10, le=1800)
    segments: int = Field(default=5, ge=1, le=50)
    style: str = Field(default="documentary", min_length=1, max_length=64)
    voice: str | None = Field(default=None, max_length=64)
    privacy: Literal["private", "unlisted", "public"] = "private"
    tags: tuple[str, ...] = Field(default=(), max_length=30)


#: Longest title of a run.
TITLE_MAX_LENGTH = 200


class TaskRequestedPayload(Frozen):
    title: str = Field(min_length=1, max_length=TITLE_MAX_LENGTH)
    content: str = Field(min_length=1, max_length=100_000)
    settings: ProjectSettings = ProjectSettings()


class ErrorInfo(Frozen):
    """Why something failed: a stable code for programs, a message for people."""

    code: str = Field(min_length=1, max_length=64)
    message: Text
    details: SmallJson = Field(default_factory=dict)


class TaskCompletedPayload(Frozen):
    result: SmallJson = Field(default_factory=dict)
    message: Text = "completed"


class TaskFailedPayload(Frozen):
    error: ErrorInfo
    failed_stage: Stage | None = None


class TaskCancelledPayload(Frozen):
    reason: Text = ""


class TaskRequested(Envelope):
    type: Literal["task.requested"] = "task.requested"
    payload: TaskRequestedPayload


class TaskCompleted(Envelope):
    type: Literal["task.completed"] = "task.completed"
    payload: TaskCompletedPayload


class TaskFailed(Envelope):
    type: Literal["task.failed"] = "task.failed"
    payload: TaskFailedPayload


class TaskCancelled(Envelope):
    type: Literal["task.cancelled"] = "task.cancelled"
    payload: TaskCancelledPayload

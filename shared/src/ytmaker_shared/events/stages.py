"""Stage lifecycle events, written by each stage to its own topic (DESIGN §3)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from ytmaker_shared.events.envelope import Envelope, Frozen
from ytmaker_shared.events.tasks import ErrorInfo
from ytmaker_shared.stages import Stage


class Artifact(Frozen):
    """A file a stage made, by reference: events carry URIs and sizes, never bytes."""

    name: str = Field(min_length=1, max_length=200)
    uri: str = Field(min_length=1, max_length=2000)
    size: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    content_type: str = "application/octet-stream"


class StageStartedPayload(Frozen):
    attempt: int = Field(default=1, ge=1)
    message: str = ""


class StageProgressPayload(Frozen):
    progress: float = Field(ge=0, le=100)
    message: str = ""
    current_step: str | None = None
    completed_steps: int | None = Field(default=None, ge=0)
    total_steps: int | None = Field(default=None, ge=0)
    attempt: int = Field(default=1, ge=1)


class StageCompletedPayload(Frozen):
    status: Literal["completed", "skipped"] = "completed"
    artifacts: tuple[Artifact, ...] = ()
    message: str = ""
    result: dict[str, Any] = Field(default_factory=dict)
    attempt: int = Field(default=1, ge=1)


class StageFailedPayload(Frozen):
    error: ErrorInfo
    attempt: int = Field(default=1, ge=1)


class StageRetryingPayload(Frozen):
    attempt: int = Field(ge=1, description="The attempt about to start.")
    delay_seconds: float = Field(ge=0)
    error: ErrorInfo


class StageCancelledPayload(Frozen):
    message: str = ""


class StageEvent(Envelope):
    """A stage's lifecycle event: `stage` is required."""

    stage: Stage


class StageStarted(StageEvent):
    type: Literal["stage.started"] = "stage.started"
    payload: StageStartedPayload


class StageProgressed(StageEvent):
    type: Literal["stage.progress"] = "stage.progress"
    payload: StageProgressPayload


class StageCompleted(StageEvent):
    type: Literal["stage.completed"] = "stage.completed"
    payload: StageCompletedPayload


class StageFailed(StageEvent):
    type: Literal["stage.failed"] = "stage.failed"
    payload: StageFailedPayload


class StageRetrying(StageEvent):
    type: Literal["stage.retrying"] = "stage.retrying"
    payload: StageRetryingPayload


class StageCancelled(StageEvent):
    type: Literal["stage.cancelled"] = "stage.cancelled"
    payload: StageCancelledPayload

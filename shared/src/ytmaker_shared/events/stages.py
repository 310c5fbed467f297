"""Stage lifecycle events, written by each stage to its own topic."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ytmaker_shared.events.envelope import Envelope, Frozen, SmallJson, Text
from ytmaker_shared.events.tasks import ErrorInfo
from ytmaker_shared.stages import Stage


class Artifact(Frozen):
    """A file a stage made, by reference: events carry URIs and sizes, never bytes."""

    name: str = Field(min_length=1, max_length=200)
    uri: str = Field(min_length=1, max_length=2000)
    size: int = Field(ge=0, le=2**63 - 1)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    content_type: str = "application/octet-stream"


#: Bounds of the counts a stage reports: far above any real run, within every integer column.
MAX_ATTEMPT = 1000
MAX_STEPS = 2**31 - 1
#: Longest name of the step a stage is at.
STEP_MAX_LENGTH = 200


class StageStartedPayload(Frozen):
    attempt: int = Field(default=1, ge=1, le=MAX_ATTEMPT)
    message: Text = ""


class StageProgressPayload(Frozen):
    progress: float = Field(ge=0, le=100)
    message: Text = ""
    current_step: str | None = Field(default=None, max_length=STEP_MAX_LENGTH)
    completed_steps: int | None = Field(default=None, ge=0, le=MAX_STEPS)
    total_steps: int | None = Field(default=None, ge=0, le=MAX_STEPS)
    attempt: int = Field(default=1, ge=1, le=MAX_ATTEMPT)


class StageCompletedPayload(Frozen):
    status: Literal["completed", "skipped"] = "completed"
    artifacts: tuple[Artifact, ...] = ()
    message: Text = ""
    result: SmallJson = Field(default_factory=dict)
    attempt: int = Field(default=1, ge=1, le=MAX_ATTEMPT)


class StageFailedPayload(Frozen):
    error: ErrorInfo
    attempt: int = Field(default=1, ge=1, le=MAX_ATTEMPT)


class StageRetryingPayload(Frozen):
    attempt: int = Field(ge=1, le=MAX_ATTEMPT, description="The attempt about to start.")
    delay_seconds: float = Field(ge=0, le=7 * 24 * 3600)
    error: ErrorInfo


class StageCancelledPayload(Frozen):
    message: Text = ""


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

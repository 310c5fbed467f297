"""Render's join: it starts only when images, audio and avatars have all completed for a task.
Pure: the state is folded from `pipeline.assets` events.

A completion with status `skipped` (avatars offline) counts as done. Once any of the three
failed or was cancelled the join never fires for that task (the task has failed or been
cancelled). A repeated event changes nothing: the first completion of each stage is kept,
and the event that completed the join is remembered as the trigger. Only the trigger fires
render, also when it is delivered again after a crash (the framework's outbox then makes a
finished render a no-op), while redeliveries of the other events never do.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from ytmaker_shared.events import (
    Artifact,
    Event,
    StageCancelled,
    StageCompleted,
    StageFailed,
)
from ytmaker_shared.events.envelope import Frozen
from ytmaker_shared.stages import ASSET_STAGES, Stage


class AssetOutcome(Frozen):
    """One asset stage's completion, as much of it as render needs."""

    event_id: str
    status: str
    artifacts: tuple[Artifact, ...] = ()
    result: dict[str, Any] = Field(default_factory=dict)


class JoinState(Frozen):
    task_id: str
    done: dict[Stage, AssetOutcome] = Field(default_factory=dict)
    dead: str | None = Field(default=None, description="Why the join will never fire.")
    trigger: str | None = Field(default=None, description="The event that completed the join.")

    @property
    def ready(self) -> bool:
        return self.dead is None and set(self.done) >= ASSET_STAGES

    @property
    def missing(self) -> set[Stage]:
        return set(ASSET_STAGES) - set(self.done)


def relevant(event: Event) -> bool:
    """Whether `event` can change a join: a terminal event of an asset stage."""
    return (
        isinstance(event, StageCompleted | StageFailed | StageCancelled)
        and event.stage in ASSET_STAGES
    )


def apply(state: JoinState, event: Event) -> JoinState:
    """Fold one event into the task's join; events of other tasks or stages change nothing."""
    if event.task_id != state.task_id or not relevant(event):
        return state
    assert isinstance(event, StageCompleted | StageFailed | StageCancelled)
    if isinstance(event, StageCompleted):
        if event.stage in state.done:
            return state
        outcome = AssetOutcome(
            event_id=event.event_id,
            status=event.payload.status,
            artifacts=event.payload.artifacts,
            result=event.payload.result,
        )
        done = {**state.done, event.stage: outcome}
        trigger = event.event_id if state.dead is None and set(done) >= ASSET_STAGES else None
        return state.model_copy(update={"done": done, "trigger": trigger})
    if state.dead is not None or event.stage in state.done:
        return state
    verb = "failed" if isinstance(event, StageFailed) else "was cancelled"
    return state.model_copy(update={"dead": f"{event.stage.value} {verb}"})


def fires(state: JoinState, event: Event) -> bool:
    """Whether `event`, already folded into `state`, starts render."""
    return state.ready and state.trigger == event.event_id

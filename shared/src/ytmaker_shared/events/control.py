"""Requests to control a run, on `pipeline.control`. Imperative: they ask, the
stages decide; what happened is told by the stages' own events."""

from __future__ import annotations

from typing import Literal, TypeAlias, get_args

from pydantic import Field

from ytmaker_shared.events.envelope import Envelope, Frozen


class ControlPayload(Frozen):
    requested_by: str = Field(min_length=1, max_length=128)
    reason: str = Field(default="", max_length=1000)


class CancelTask(Envelope):
    type: Literal["task.cancel_requested"] = "task.cancel_requested"
    payload: ControlPayload


class PauseTask(Envelope):
    type: Literal["task.pause_requested"] = "task.pause_requested"
    payload: ControlPayload


class ResumeTask(Envelope):
    type: Literal["task.resume_requested"] = "task.resume_requested"
    payload: ControlPayload


#: What a client may ask of a run: each action is one request event on `pipeline.control`.
ControlAction: TypeAlias = Literal["cancel", "pause", "resume"]
CONTROL_ACTIONS: frozenset[str] = frozenset(get_args(ControlAction))
ControlRequest: TypeAlias = CancelTask | PauseTask | ResumeTask
CONTROL_REQUESTS: dict[str, type[ControlRequest]] = {
    "cancel": CancelTask,
    "pause": PauseTask,
    "resume": ResumeTask,
}

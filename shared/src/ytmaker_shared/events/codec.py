"""Events to bytes and back. Decoding upcasts old versions and validates strictly; anything
that fails raises `DecodeError` with a reason that goes to the dead-letter topic."""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import Field, TypeAdapter, ValidationError

from ytmaker_shared.events.control import CancelTask, PauseTask, ResumeTask
from ytmaker_shared.events.stages import (
    StageCancelled,
    StageCompleted,
    StageFailed,
    StageProgressed,
    StageRetrying,
    StageStarted,
)
from ytmaker_shared.events.tasks import TaskCancelled, TaskCompleted, TaskFailed, TaskRequested
from ytmaker_shared.events.upcasting import UnknownSchemaVersion, upcast

EVENT_TYPES = (
    TaskRequested,
    TaskCompleted,
    TaskFailed,
    TaskCancelled,
    StageStarted,
    StageProgressed,
    StageCompleted,
    StageFailed,
    StageRetrying,
    StageCancelled,
    CancelTask,
    PauseTask,
    ResumeTask,
)

Event = Annotated[
    TaskRequested
    | TaskCompleted
    | TaskFailed
    | TaskCancelled
    | StageStarted
    | StageProgressed
    | StageCompleted
    | StageFailed
    | StageRetrying
    | StageCancelled
    | CancelTask
    | PauseTask
    | ResumeTask,
    Field(discriminator="type"),
]

EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)

#: The event's `type` string → its model class.
BY_TYPE: dict[str, type[Any]] = {cls.model_fields["type"].default: cls for cls in EVENT_TYPES}


class DecodeError(ValueError):
    """Bytes that are not a valid event. `reason` is a stable code: `invalid_json`,
    `unknown_schema_version` or `invalid_event`; `detail` says what exactly."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def encode(event: Event) -> bytes:
    """The event as UTF-8 JSON."""
    return event.model_dump_json().encode()


def decode(data: bytes | None) -> Event:
    """Parse, upcast and validate one event; raises DecodeError."""
    if data is None:
        raise DecodeError("invalid_json", "the message has no value (tombstone)")
    try:
        raw = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DecodeError("invalid_json", str(exc)) from None
    if not isinstance(raw, dict):
        raise DecodeError("invalid_json", f"an event is a JSON object, got {type(raw).__name__}")
    try:
        raw = upcast(raw)
    except UnknownSchemaVersion as exc:
        raise DecodeError("unknown_schema_version", str(exc)) from None
    except (KeyError, TypeError, ValueError) as exc:
        raise DecodeError("invalid_event", f"cannot upcast: {exc!r}") from None
    try:
        return EVENT_ADAPTER.validate_python(raw)
    except ValidationError as exc:
        errors = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or '<root>'}: {e['msg']}" for e in exc.errors()[:5]
        )
        raise DecodeError("invalid_event", errors) from None

"""Records to bytes and back: the one decode entry point of every consumer of every topic.

Decoding upcasts old event versions and validates strictly; anything that fails, for any
reason, raises `DecodeError` with a reason that goes to the dead-letter topic (or, for a reader
that must not write, to a metric and a log line)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import orjson
from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from ytmaker_shared.events.control import CancelTask, PauseTask, ResumeTask
from ytmaker_shared.events.envelope import SCHEMA_VERSION
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
    """Bytes that are not a valid record. `reason` is a stable code: `invalid_json`,
    `unknown_schema_version`, `invalid_event` or `invalid_record`; `detail` says what exactly
    (bounded in length: it travels in a dead-letter header and a log line)."""

    def __init__(self, reason: str, detail: str) -> None:
        detail = detail if len(detail) <= _DETAIL_LIMIT else detail[: _DETAIL_LIMIT - 1] + "…"
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


_DETAIL_LIMIT = 500

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")


def encode(event: Event) -> bytes:
    """The event as UTF-8 JSON."""
    return event.model_dump_json().encode()


def decode(data: bytes | None) -> Event:
    """Parse, upcast and validate one event: the one way every consumer reads an event.

    Any bytes are input. Whatever parsing or validating them raises (deep nesting, numbers of
    any size, invalid UTF-8, an upcaster tripping over a wrong type) comes out as DecodeError,
    and nothing else does, so a caller that dead-letters DecodeError can never be stopped by
    a record.
    """
    try:
        return _decode_event(data)
    except DecodeError:
        raise
    except Exception as exc:  # any failure of a decoder is a bad record, never a crash
        raise DecodeError("invalid_event", _describe(exc)) from None


def decode_model(model: type[M], data: bytes | None) -> M:
    """One JSON record of `model` (an update, a state, an estimate), under the same rule as
    `decode`: raises DecodeError (`invalid_record`) and nothing else."""
    if data is None:
        raise DecodeError("invalid_record", "the record has no value (tombstone)")
    try:
        return model.model_validate_json(data)
    except ValidationError as exc:
        raise DecodeError("invalid_record", _errors(exc)) from None
    except Exception as exc:  # as in decode
        raise DecodeError("invalid_record", _describe(exc)) from None


def decode_with(parse: Callable[[dict[str, Any]], T], data: bytes | None) -> T:
    """A JSON object read by a hand-written `parse` (a hot path that cannot afford a model),
    under the same rule: whatever `parse` raises comes out as DecodeError (`invalid_record`)."""
    raw = parse_object(data)
    try:
        return parse(raw)
    except Exception as exc:  # as in decode
        raise DecodeError("invalid_record", _describe(exc)) from None


def parse_object(data: bytes | None) -> dict[str, Any]:
    """Bytes as a JSON object, parsed by orjson (nesting depth and number size bounded);
    raises DecodeError (`invalid_json`) and nothing else."""
    if data is None:
        raise DecodeError("invalid_json", "the message has no value (tombstone)")
    try:
        raw = orjson.loads(data)
    except Exception as exc:  # orjson raises JSONDecodeError; anything else is bad input too
        raise DecodeError("invalid_json", _describe(exc)) from None
    if not isinstance(raw, dict):
        raise DecodeError("invalid_json", f"a record is a JSON object, got {type(raw).__name__}")
    return raw


def _decode_event(data: bytes | None) -> Event:
    if data is None:
        raise DecodeError("invalid_json", "the message has no value (tombstone)")
    # Fast path: an event of the current version is parsed and validated in one pass by
    # pydantic's own JSON parser (docs/decisions/0028-fold-cpu.md).
    try:
        event: Event = EVENT_ADAPTER.validate_json(data, strict=True)
    except ValidationError:
        pass
    else:
        if event.schema_version == SCHEMA_VERSION:
            return event
    raw = parse_object(data)
    try:
        raw = upcast(raw)
    except UnknownSchemaVersion as exc:
        raise DecodeError("unknown_schema_version", str(exc)) from None
    except Exception as exc:
        raise DecodeError("invalid_event", f"cannot upcast: {_describe(exc)}") from None
    try:
        return EVENT_ADAPTER.validate_python(raw)
    except ValidationError as exc:
        raise DecodeError("invalid_event", _errors(exc)) from None


def _errors(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(map(str, e['loc'])) or '<root>'}: {e['msg']}" for e in exc.errors()[:5]
    )


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"

"""The bytes of what the fold writes: updates on `progress.updates`, states on `progress.state`.

A `progress.state` record's value is the task's `TaskState` (the contract); the
fold's own bookkeeping (recent event ids, ignored events) travels in the `ytmaker.fold` header,
so that a restore gives back exactly the `Folded` that was written. Once a finished task has
left the fold's memory its record is a marker instead (`encode_marker`), and later a tombstone
(decision 0100).

Updates and states are written from the fold's dataclasses with orjson: the same JSON as the
contract's `model_dump_json` (times in UTC end in `Z`, stage names are the keys of `stages`),
at a fraction of its cost (docs/decisions/0028-fold-cpu.md). Everything in a state fits
orjson: the event contracts bound every integer and the size of every JSON object.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from pydantic import BaseModel

from ytmaker_progress.eta import EtaEstimated
from ytmaker_progress.fold import DEDUPE_WINDOW
from ytmaker_progress.folded import Folded, Task, Update
from ytmaker_shared.events import decode_model, decode_with
from ytmaker_shared.progress import ProgressUpdate, TaskState, TaskStatus

FOLD_HEADER = "ytmaker.fold"
#: The header of a finished task's marker record (decision 0100): the task's state has left
#: the fold's memory; its value says how the task ended, for people reading the topic.
MARKER_HEADER = "ytmaker.fold.finished"

Headers = Sequence[tuple[str, bytes]]


def decode_estimate(value: bytes | None) -> EtaEstimated:
    """A `progress.eta` record; raises DecodeError (`invalid_record`) for anything else."""
    return decode_model(EtaEstimated, value)


def encode_update(update: Update) -> bytes:
    return orjson.dumps(update, default=_nested_model, option=_OPTIONS)


def decode_update(value: bytes) -> ProgressUpdate:
    """Raises pydantic.ValidationError for bytes that are not an update."""
    return ProgressUpdate.model_validate_json(value)


def encode_state(folded: Folded) -> tuple[bytes, list[tuple[str, bytes]]]:
    """The value and headers of the task's `progress.state` record."""
    bookkeeping = {"recent_ids": list(folded.recent_ids), "ignored": folded.ignored}
    value = orjson.dumps(folded.task, default=_nested_model, option=_OPTIONS)
    return value, [(FOLD_HEADER, orjson.dumps(bookkeeping))]


def encode_marker(status: str) -> tuple[bytes, list[tuple[str, bytes]]]:
    """The value and headers of a finished task's marker record on `progress.state`."""
    return orjson.dumps({"status": status}), [(MARKER_HEADER, b"1")]


def is_marker(headers: Headers) -> bool:
    return any(key == MARKER_HEADER for key, _ in headers)


def decode_marker(value: bytes | None) -> str:
    """The final status a marker record holds; raises DecodeError for anything else."""
    return decode_with(_final_status, value)


def _final_status(raw: dict[str, Any]) -> str:
    status = TaskStatus(raw["status"])
    if not status.terminal or len(raw) != 1:
        raise ValueError("a marker holds the final status of a finished task, and only that")
    return status.value


def decode_state(value: bytes | None, headers: Headers) -> Folded | None:
    """The `Folded` of a state record; None for a tombstone. Raises DecodeError."""
    if value is None:
        return None
    task = decode_model(TaskState, value)
    raw = next((v for k, v in headers if k == FOLD_HEADER), b"{}")
    return decode_with(lambda bookkeeping: _folded(task, bookkeeping), raw)


def _folded(task: TaskState, bookkeeping: dict[str, Any]) -> Folded:
    recent_ids = bookkeeping.get("recent_ids", ())
    ignored = bookkeeping.get("ignored", 0)
    if not isinstance(recent_ids, list) or type(ignored) is not int or not 0 <= ignored < 2**63:
        raise ValueError("the fold's bookkeeping is not what the fold writes")
    return Folded(
        task=Task.from_model(task),
        recent_ids=tuple(str(i) for i in recent_ids[-DEDUPE_WINDOW:]),
        ignored=ignored,
    )


_OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_NON_STR_KEYS  # as pydantic: `Z`; `Stage` keys


def _nested_model(value: Any) -> Any:
    """A pydantic model inside the state (an `ErrorInfo`) as its JSON value."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    raise TypeError(type(value).__name__)

"""The bytes of what the fold writes: updates on `progress.updates`, states on `progress.state`.

A `progress.state` record's value is the task's `TaskState` (the contract, DESIGN §4); the
fold's own bookkeeping (recent event ids, ignored events) travels in the `ytmaker.fold` header,
so that a restore gives back exactly the `Folded` that was written.

Updates and states are written from the fold's dataclasses with orjson: the same JSON as the
contract's `model_dump_json` (times in UTC end in `Z`, stage names are the keys of `stages`),
at a fraction of its cost (docs/decisions/0028-fold-cpu.md). What orjson cannot write (an
integer beyond 64 bits in a result, say) is written by the contract's model instead.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import orjson
from pydantic import BaseModel

from ytmaker_progress.eta import EtaEstimated
from ytmaker_progress.fold import Folded, Task, Update
from ytmaker_shared.events import decode_model
from ytmaker_shared.progress import ProgressUpdate, TaskState

FOLD_HEADER = "ytmaker.fold"

Headers = Sequence[tuple[str, bytes]]


class BadStateRecord(ValueError):
    """A `progress.state` record that is not a state this code wrote."""


def decode_estimate(value: bytes | None) -> EtaEstimated:
    """A `progress.eta` record; raises DecodeError (`invalid_record`) for anything else."""
    return decode_model(EtaEstimated, value)


def encode_update(update: Update) -> bytes:
    return _dumps(update, lambda: update.model().model_dump_json().encode())


def decode_update(value: bytes) -> ProgressUpdate:
    """Raises pydantic.ValidationError for bytes that are not an update."""
    return ProgressUpdate.model_validate_json(value)


def encode_state(folded: Folded) -> tuple[bytes, list[tuple[str, bytes]]]:
    """The value and headers of the task's `progress.state` record."""
    bookkeeping = {"recent_ids": list(folded.recent_ids), "ignored": folded.ignored}
    task = folded.task
    return _dumps(task, lambda: task.model().model_dump_json().encode()), [
        (FOLD_HEADER, orjson.dumps(bookkeeping))
    ]


def decode_state(value: bytes | None, headers: Headers) -> Folded | None:
    """The `Folded` of a state record; None for a tombstone. Raises BadStateRecord."""
    if value is None:
        return None
    try:
        task = TaskState.model_validate_json(value)
        raw = next((v for k, v in headers if k == FOLD_HEADER), b"{}")
        bookkeeping = orjson.loads(raw)
        return Folded(
            task=Task.from_model(task),
            recent_ids=tuple(str(i) for i in bookkeeping.get("recent_ids", ())),
            ignored=int(bookkeeping.get("ignored", 0)),
        )
    except (ValueError, TypeError, AttributeError) as exc:
        raise BadStateRecord(str(exc)) from exc


_OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_NON_STR_KEYS  # as pydantic: `Z`; `Stage` keys


def _dumps(value: Update | Task, by_model: Callable[[], bytes]) -> bytes:
    """`value` as JSON with orjson, or by `by_model` (the contract's model) if orjson cannot."""
    try:
        return orjson.dumps(value, default=_nested_model, option=_OPTIONS)
    except orjson.JSONEncodeError:
        return by_model()


def _nested_model(value: Any) -> Any:
    """A pydantic model inside the state (an `ErrorInfo`) as its JSON value."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    raise TypeError(type(value).__name__)

"""The bytes of what the fold writes: updates on `progress.updates`, states on `progress.state`.

A `progress.state` record's value is the task's `TaskState` (the contract, DESIGN §4); the
fold's own bookkeeping (recent event ids, ignored events) travels in the `ytmaker.fold` header,
so that a restore gives back exactly the `Folded` that was written.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from pydantic import ValidationError

from ytmaker_progress.eta import EtaEstimated
from ytmaker_progress.fold import Folded
from ytmaker_shared.events import EVENT_ADAPTER, DecodeError, Event, decode
from ytmaker_shared.events.envelope import SCHEMA_VERSION
from ytmaker_shared.progress import ProgressUpdate, TaskState

FOLD_HEADER = "ytmaker.fold"

Headers = Sequence[tuple[str, bytes]]


class BadStateRecord(ValueError):
    """A `progress.state` record that is not a state this code wrote."""


def decode_event(value: bytes | None) -> Event:
    """`ytmaker_shared.events.decode`, faster for events of the current schema version.

    Bytes of the current version are parsed and validated in one pass by pydantic's own JSON
    parser; anything else (older versions to upcast, bad bytes) takes the shared path, which
    raises DecodeError with the reason for the dead-letter topic.
    """
    if value is not None:
        try:
            event: Event = EVENT_ADAPTER.validate_json(value)
        except ValidationError:
            pass
        else:
            if event.schema_version == SCHEMA_VERSION:
                return event
    return decode(value)


def decode_estimate(value: bytes | None) -> EtaEstimated:
    """A `progress.eta` record; raises DecodeError (`invalid_event`) for anything else."""
    try:
        return EtaEstimated.model_validate_json(value or b"")
    except ValidationError as exc:
        detail = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:5])
        raise DecodeError("invalid_event", detail) from None


def encode_update(update: ProgressUpdate) -> bytes:
    return update.model_dump_json().encode()


def decode_update(value: bytes) -> ProgressUpdate:
    """Raises pydantic.ValidationError for bytes that are not an update."""
    return ProgressUpdate.model_validate_json(value)


def encode_state(folded: Folded) -> tuple[bytes, list[tuple[str, bytes]]]:
    """The value and headers of the task's `progress.state` record."""
    bookkeeping = {"recent_ids": list(folded.recent_ids), "ignored": folded.ignored}
    return folded.task.model_dump_json().encode(), [
        (FOLD_HEADER, json.dumps(bookkeeping, separators=(",", ":")).encode())
    ]


def decode_state(value: bytes | None, headers: Headers) -> Folded | None:
    """The `Folded` of a state record; None for a tombstone. Raises BadStateRecord."""
    if value is None:
        return None
    try:
        task = TaskState.model_validate_json(value)
        raw = next((v for k, v in headers if k == FOLD_HEADER), b"{}")
        bookkeeping = json.loads(raw)
        return Folded(
            task=task,
            recent_ids=tuple(str(i) for i in bookkeeping.get("recent_ids", ())),
            ignored=int(bookkeeping.get("ignored", 0)),
        )
    except (ValueError, TypeError, AttributeError) as exc:
        raise BadStateRecord(str(exc)) from exc

"""What the read model refuses to store from `progress.updates` (`rows.checked_update`): each
case is a valid update with one thing wrong."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ytmaker_progress.readmodel.rows import checked_update
from ytmaker_shared.events import DecodeError, decode_with


def valid() -> dict[str, Any]:
    return {
        "type": "progress",
        "task_id": "t",
        "event_id": "e1",
        "occurred_at": "2026-12-01T10:00:00Z",
        "state": {
            "project_id": "p",
            "owner": "alice",
            "status": "running",
            "progress": 12.5,
            "current_step": None,
            "message": "",
            "total_steps": 4,
            "completed_steps": 1,
            "created_at": "2026-12-01T09:59:00Z",
            "updated_at": "",
            "stages": {
                "script": {
                    "status": "completed",
                    "attempt": 1,
                    "progress": 100,
                    "started_at": "2026-12-01T09:59:01Z",
                    "finished_at": "2026-12-01T09:59:30.5+00:00",
                },
                "images": {"status": "pending", "progress": None},
            },
        },
    }


def set_path(update: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    *parents, last = path.split(".")
    node = update
    for key in parents:
        node = node[key]
    if value is _MISSING:
        del node[last]
    else:
        node[last] = value
    return update


_MISSING = object()

REFUSED = [
    ("task_id", _MISSING),
    ("task_id", 7),
    ("task_id", "t" * 65),
    ("event_id", ["e"]),
    ("type", "x" * 21),
    ("occurred_at", "yesterday"),
    ("state", []),
    ("state.owner", "a\x00b"),
    ("state.status", "sleeping"),
    ("state.status", ["running"]),
    ("state.progress", True),
    ("state.progress", 100.5),
    ("state.progress", "50"),
    ("state.message", "m\x00"),
    ("state.total_steps", -1),
    ("state.completed_steps", 1.0),
    ("state.completed_steps", False),
    ("state.created_at", "2026-13-01T00:00:00Z"),
    ("state.stages", ["script"]),
    ("state.stages.dance", {"status": "running"}),
    ("state.stages.script", "completed"),
    ("state.stages.script.status", "done"),
    ("state.stages.script.attempt", 2**63),
    ("state.stages.script.progress", -0.1),
    ("state.stages.script.finished_at", "soon"),
    ("state.stages.script.started_at", 12),
]


def test_a_valid_update_is_stored() -> None:
    update = decode_with(checked_update, json.dumps(valid()).encode())
    assert update["state"]["stages"]["script"]["attempt"] == 1


@pytest.mark.parametrize(("path", "value"), REFUSED, ids=[f"{p}={v!r:.20}" for p, v in REFUSED])
def test_one_thing_wrong_is_refused(path: str, value: Any) -> None:
    record = json.dumps(set_path(valid(), path, value)).encode()
    with pytest.raises(DecodeError):
        decode_with(checked_update, record)

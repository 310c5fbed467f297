"""What the read model refuses to store from `progress.updates` (`rows.checked_update`): each
case is a valid update with one thing wrong."""

from __future__ import annotations

import contextlib
import copy
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ytmaker_progress.eta import estimate
from ytmaker_progress.readmodel.rows import Rows, add_update, checked_update
from ytmaker_progress.stall import StallPolicy, stall_events, stalled
from ytmaker_shared.events import DecodeError, decode_with
from ytmaker_shared.topics import task_partition


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
    # times the database columns cannot hold as the instant they name
    ("occurred_at", "2026-12-01T10:00:00"),  # no offset: which instant?
    ("state.updated_at", "2026-12-01T10:00:00"),
    ("state.stages.script.started_at", "2026-12-01T09:59:01"),
    ("state.created_at", "0001-01-01T00:00:00+01:00"),  # before year 1 in UTC
    ("state.updated_at", "9999-12-31T23:59:59-01:00"),  # after year 9999 in UTC
    # what the stall watch builds its events from (an event's ids are never empty)
    ("task_id", ""),
    ("state.project_id", ""),
    ("state.owner", ""),
    ("state.task_id", "somebody-else"),
    ("state.last_event_id", {"id": "e"}),
    ("state.last_event_id", "e" * 65),
]


def test_a_valid_update_is_stored() -> None:
    update = decode_with(checked_update, json.dumps(valid()).encode())
    assert update["state"]["stages"]["script"]["attempt"] == 1


@pytest.mark.parametrize(("path", "value"), REFUSED, ids=[f"{p}={v!r:.20}" for p, v in REFUSED])
def test_one_thing_wrong_is_refused(path: str, value: Any) -> None:
    record = json.dumps(set_path(valid(), path, value)).encode()
    with pytest.raises(DecodeError):
        decode_with(checked_update, record)


def paths(node: Any, prefix: str = "") -> list[str]:
    """Every path to a field of `valid()`, nested ones included."""
    out: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            out += [prefix + key, *paths(value, prefix + key + ".")]
    return out


_ODD_VALUES = st.one_of(
    st.sampled_from([None, "", 0, -1, 2**63 - 1, 1.5, True, [], {}, "x" * 65, "\x00", "é🎬\u202e"]),
    st.sampled_from(
        [
            "2026-12-01T10:00:00",
            "2026-12-01T10:00:00+14:00",
            "2026-12-01",
            "0001-01-01T00:00:00Z",
            "9999-12-31T23:59:59Z",
        ]
    ),
    st.sampled_from(["completed", "failed", "running", "pending", "queued"]),
)


@given(
    changes=st.lists(st.tuples(st.sampled_from(paths(valid())), _ODD_VALUES), max_size=4),
    dropped=st.lists(st.sampled_from(paths(valid())), max_size=2),
)
def test_an_update_is_refused_or_stored_and_served_never_crashes(
    changes: list[tuple[str, Any]], dropped: list[str]
) -> None:
    """Whatever the read model takes (`add_update` raises DecodeError and nothing else, or
    stores it), the ETA and the stall watch can work with: a crash there stops the sink (or
    the stall watch) on every start, as the record is read again."""
    update = valid()
    for path, value in [*changes, *((p, _MISSING) for p in dropped)]:
        with contextlib.suppress(KeyError, TypeError):  # under a field already replaced
            # a copy: the sampled `{}` and `[]` are the same objects every time, and one set
            # under another's path made the update contain itself
            set_path(update, path, value if value is _MISSING else copy.deepcopy(value))
    rows = Rows()
    try:
        add_update(rows, 5, "ep", json.dumps(update).encode())
    except DecodeError:
        return
    [task] = rows.task_rows()
    state = json.loads(task["state"])
    assert task["created_at"].tzinfo is UTC and task["updated_at"].tzinfo is UTC
    assert state["task_id"] == update["task_id"]
    left = estimate(state, dict.fromkeys(["script", "images", "audio", "avatars"], 10.0))
    assert left is None or left >= 0
    state["updated_at"] = task["updated_at"].isoformat()  # as `Store.silent_tasks` gives it
    now = datetime(2030, 1, 1, tzinfo=UTC)  # a watch's clock, whatever the update's said
    if stall := stalled(state, now, datetime(2020, 1, 1, tzinfo=UTC), StallPolicy()):
        stall_events(state, stall, "progress/test")


STORED = [
    ("state.stages.script.attempt", None),
    ("state.stages.script.attempt", _MISSING),
    ("state.stages.script.progress", None),
    ("state.updated_at", _MISSING),
    ("state.task_id", "t"),
]


@pytest.mark.parametrize(("path", "value"), STORED, ids=[f"{p}={v!r:.20}" for p, v in STORED])
def test_odd_but_valid_updates_are_stored(path: str, value: Any) -> None:
    rows = Rows()
    add_update(rows, 5, "ep", json.dumps(set_path(valid(), path, value)).encode())
    [run] = rows.stage_runs.values()
    attempt = 0 if path.endswith("attempt") else 1
    assert (run["stage"], run["attempt"], run["duration_s"]) == ("script", attempt, 29.5)
    assert json.loads(rows.task_rows()[0]["state"])["task_id"] == "t"


def test_times_are_stored_in_utc_whatever_offset_they_were_written_with() -> None:
    update = valid()
    update["occurred_at"] = "2026-12-01T12:00:00+02:00"
    update["state"]["created_at"] = "2026-12-01T02:00:00-08:00"
    rows = Rows()
    add_update(rows, 1, "ep", json.dumps(update).encode())
    ten = datetime(2026, 12, 1, 10, tzinfo=UTC)
    [task] = rows.task_rows()
    for stored in (rows.history[0]["created_at"], task["created_at"], task["updated_at"]):
        assert stored == ten
        assert stored.utcoffset() == timedelta(0)  # SQLite's column keeps the clock time only


def test_an_update_outside_its_tasks_partition_is_refused_and_adds_nothing() -> None:
    """One task lives in one partition (its key's, by Kafka's default partitioner): an update
    of it elsewhere would be applied out of order with its real stream, and offsets by which
    readers resume would name another partition's records."""
    home = task_partition("t", 6)
    record = json.dumps(valid()).encode()
    rows = Rows()
    for wrong in sorted(set(range(6)) - {home}):
        with pytest.raises(DecodeError) as refused:
            add_update(rows, 9, "ep", record, partition=wrong, partitions=6)
        assert refused.value.reason == "wrong_partition"
        assert f"partition is {home} of 6" in refused.value.detail
    assert (rows.history, rows.latest, rows.stage_runs) == ([], {}, {})

    task_id, _ = add_update(rows, 9, "ep", record, partition=home, partitions=6)
    assert task_id == "t" and [h["offset"] for h in rows.history] == [9]

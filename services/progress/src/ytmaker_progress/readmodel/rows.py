"""From log records to read-model rows: pure functions, no database.

`updates_to_rows` turns a batch of `progress.updates` records into history rows, the latest
task row per task and the finished stage attempts; `project_row` turns a `task.requested` into
a project. Updates are read as plain JSON, checked by hand against what the columns take
(`checked_update`), which keeps a rebuild of millions of updates fast.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from ytmaker_shared.events import TaskRequested, decode_with
from ytmaker_shared.events.envelope import ID_MAX_LENGTH, OWNER_MAX_LENGTH, TEXT_MAX_LENGTH
from ytmaker_shared.events.stages import STEP_MAX_LENGTH
from ytmaker_shared.progress import FINISHED_STAGE_STATUSES, StageStatus, TaskStatus
from ytmaker_shared.stages import Stage
from ytmaker_shared.topics import misplaced

_TASK_FIELDS = ("project_id", "owner", "status", "progress")


@dataclass
class Rows:
    """What one batch of records writes; each collection is free of duplicate keys.

    Task rows are built once per batch from the latest update of each task (`latest`), not
    per update: a rebuild reads millions of updates and most tasks have many in one batch."""

    history: list[dict[str, Any]] = field(default_factory=list)
    stage_runs: dict[tuple[str, str, int], dict[str, Any]] = field(default_factory=dict)
    projects: dict[str, dict[str, Any]] = field(default_factory=dict)
    latest: dict[str, tuple[int, dict[str, Any], str]] = field(default_factory=dict)
    #: The finished stage attempts already added, in this batch or (given by the sink) in
    #: earlier ones: every update repeats each finished stage of its task.
    finished_seen: dict[tuple[str, str, int], tuple[str, str]] = field(default_factory=dict)

    def task_rows(self, stored_at: datetime | None = None) -> list[dict[str, Any]]:
        """Each task's row, from its latest update in the batch (built on each call);
        `stored_at` is when the database stores it."""
        return [
            _task_row(task_id, offset, state, occurred, stored_at)
            for task_id, (offset, state, occurred) in self.latest.items()
        ]


#: Where a reader stands, per topic partition: the next offset and the topic's epoch.
Positions = dict[tuple[str, int], tuple[int, str | None]]

#: One update of a task's history as stored: `(offset, epoch, its JSON as it came from the log)`.
#: A plain tuple of a number and strings, which the garbage collector stops tracking (it
#: tracks a NamedTuple for ever).
StoredUpdate = tuple[int, str | None, str]

HistoryItem = dict[str, Any]  # {"offset", "epoch", "update"}: one update as readers get it


def history_item(stored: StoredUpdate) -> HistoryItem:
    """The stored update parsed, its state carrying its position."""
    offset, epoch, text = stored
    update = json.loads(text)
    update["state"]["offset"], update["state"]["epoch"] = offset, epoch
    return {"offset": offset, "epoch": epoch, "update": update}


@functools.lru_cache(maxsize=4096)
def parse_time(value: str) -> datetime:
    """An ISO 8601 time with its offset, in UTC: SQLite's columns keep the clock time alone,
    PostgreSQL's cannot give back a time outside Python's years 1 to 9999 in UTC. Raises
    ValueError for a time without an offset (which instant?), OverflowError for one outside
    those years. Cached: every update repeats its task's times (created, each stage's start
    and finish), about ten an update, and a datetime is immutable."""
    at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if at.tzinfo is None:
        raise ValueError("a time without its offset")
    return at.astimezone(UTC)


def add_update(
    rows: Rows,
    offset: int,
    epoch: str | None,
    value: bytes | None,
    *,
    partition: int | None = None,
    partitions: int = 1,
) -> tuple[str, StoredUpdate]:
    """Add one update record; returns its task and the update as stored. Raises DecodeError,
    and adds nothing, for any bytes that are not an update the read model can store, and
    (`wrong_partition`) for an update read from `partition` (of `partitions`) when its task
    lives in another: a task's updates are one stream, in one partition, by whose offsets
    readers order them and resume (`ytmaker_shared.topics.task_partition`)."""
    update = decode_with(checked_update, value)
    state = update["state"]
    task_id, occurred_at = update["task_id"], update["occurred_at"]
    if partition is not None and (error := misplaced(task_id, partition, partitions)):
        raise error
    state["offset"], state["epoch"] = offset, epoch
    text = value.decode() if value else ""  # `value` is an update: decode_with checked it
    rows.history.append(
        {
            "task_id": task_id,
            "offset": offset,
            "epoch": epoch,
            "event_id": update.get("event_id", ""),
            "type": update.get("type", ""),
            "progress": state["progress"],
            "current_step": state.get("current_step"),
            "total_steps": state.get("total_steps"),
            "completed_steps": state.get("completed_steps"),
            "message": state.get("message") or "",
            "status": state["status"],
            "metadata": text,
            "created_at": parse_time(occurred_at),
        }
    )
    previous = rows.latest.get(task_id)
    if previous is None or previous[0] < offset:
        rows.latest[task_id] = (offset, state, occurred_at)
    for stage, st in state["stages"].items():
        if st["status"] in FINISHED_STAGE_STATUSES and st.get("finished_at"):
            _add_stage_run(rows, task_id, stage, st, state["owner"])
    return task_id, (offset, epoch, text)


# The read model trusts nothing on a topic: an update is checked against what its columns
# take (types, lengths, ranges) before anything of it is added. By hand rather than by the
# contract's model: a rebuild reads millions of updates, and the model costs 5× the parse.
_ID, _OWNER, _SHORT, _STEP = ID_MAX_LENGTH, OWNER_MAX_LENGTH, 20, STEP_MAX_LENGTH
_BIGINT = 2**63
_TASK_STATUSES = frozenset(s.value for s in TaskStatus)
_STAGE_STATUSES = frozenset(s.value for s in StageStatus)
_STAGES = frozenset(s.value for s in Stage)


def checked_update(update: dict[str, Any]) -> dict[str, Any]:
    """`update` if the read model can store it; raises ValueError (or anything else, which
    `decode_with` turns into DecodeError) naming the first problem."""
    state = update["state"]
    task_id = _id(update["task_id"], "task_id", _ID)
    _optional_text(update.get("event_id"), "event_id", _ID)
    _optional_text(update.get("type"), "type", _SHORT)
    parse_time(_text(update["occurred_at"], "occurred_at", _ID))
    if type(state) is not dict:
        raise ValueError("state is not an object")
    if state.setdefault("task_id", task_id) != task_id:  # the stall watch fails state's task
        raise ValueError("state.task_id is not the update's task_id")
    _optional_text(state.get("last_event_id"), "last_event_id", _ID)  # the stall's causation
    _id(state["project_id"], "project_id", _ID)
    _id(state["owner"], "owner", _OWNER)
    if state["status"] not in _TASK_STATUSES:
        raise ValueError("state.status is not a task status")
    _number(state["progress"], "progress")
    _optional_text(state.get("current_step"), "current_step", _STEP)
    _optional_text(state.get("message"), "message", TEXT_MAX_LENGTH)
    _optional_integer(state.get("total_steps"), "total_steps")
    _optional_integer(state.get("completed_steps"), "completed_steps")
    _optional_time(state.get("created_at"), "created_at")
    _optional_time(state.get("updated_at"), "updated_at")
    stages = state.setdefault("stages", {})
    if type(stages) is not dict:
        raise ValueError("state.stages is not an object")
    for stage, st in stages.items():
        if stage not in _STAGES or type(st) is not dict or st.get("status") not in _STAGE_STATUSES:
            raise ValueError(f"state.stages has a bad entry {str(stage)[:20]!r}")
        _optional_integer(st.get("attempt"), "attempt")
        if (progress := st.get("progress")) is not None:
            _number(progress, "progress")
        _optional_time(st.get("started_at"), "started_at")
        _optional_time(st.get("finished_at"), "finished_at")
    return update


# The checks take the value, not the object and a name to look up, and test exact types
# (orjson makes no subclasses): a rebuild makes ~25 of them per update.


def _text(value: Any, name: str, limit: int) -> str:
    if type(value) is not str or len(value) > limit:
        raise ValueError(f"{name} is not a text of at most {limit} characters")
    if "\x00" in value:  # PostgreSQL's text cannot hold it
        raise ValueError(f"{name} holds a NUL character")
    return value


def _id(value: Any, name: str, limit: int) -> str:
    """A text that names something: never empty, as in an event (the stall watch makes events
    of the task's ids, and one it could not make stopped the read side)."""
    text = _text(value, name, limit)
    if not text:
        raise ValueError(f"{name} is empty")
    return text


def _optional_text(value: Any, name: str, limit: int) -> None:
    if value is not None:
        _text(value, name, limit)


def _optional_time(value: Any, name: str) -> None:
    # The empty text counts as no time, as the rows read it.
    if value is not None and _text(value, name, _ID):
        parse_time(value)


def _number(value: Any, name: str) -> None:
    kind = type(value)
    if (kind is not int and kind is not float) or not 0 <= value <= 100:
        raise ValueError(f"{name} is not a number from 0 to 100")


def _optional_integer(value: Any, name: str) -> None:
    if value is not None and (type(value) is not int or not 0 <= value < _BIGINT):
        raise ValueError(f"{name} is not a non-negative 64-bit integer")


def _add_stage_run(rows: Rows, task_id: str, stage: str, st: dict[str, Any], owner: str) -> None:
    """A finished stage attempt; the same attempt in a later update is skipped unless its
    status or finish time changed (each update repeats every finished stage)."""
    key = (task_id, stage, st.get("attempt") or 0)
    seen = (st["status"], st["finished_at"])
    if rows.finished_seen.get(key) == seen:
        return
    rows.finished_seen[key] = seen
    finished = parse_time(st["finished_at"])
    started = parse_time(st["started_at"]) if st.get("started_at") else None
    rows.stage_runs[key] = {
        "task_id": task_id,
        "stage": stage,
        "attempt": key[2],
        "owner": owner,
        "status": st["status"],
        "duration_s": (finished - started).total_seconds() if started else None,
        "finished_at": finished,
    }


def _task_row(
    task_id: str, offset: int, state: dict[str, Any], occurred: str, stored_at: datetime | None
) -> dict[str, Any]:
    return {
        "task_id": task_id,
        "project_id": state["project_id"],
        "owner": state["owner"],
        "status": state["status"],
        "progress": state["progress"],
        "created_at": parse_time(state.get("created_at") or occurred),
        "updated_at": parse_time(state.get("updated_at") or occurred),
        "last_offset": offset,
        "epoch": state["epoch"],
        "state": state_text(state),
        "stored_at": stored_at,
    }


def state_text(state: dict[str, Any]) -> str:
    """A state as the `tasks.state` column holds it. orjson writes it 10× faster than `json`
    (a task row per update at 1,000 updates/s was 1.6 % of a core), but stops at 254 levels of
    nesting where its parser, and so a checked update, allows 1,024: such a state is written
    by `json`. Either is JSON that reads back as the same state (only the spelling of some
    numbers and of non-ASCII characters differs: the column is compared as JSON)."""
    try:
        return orjson.dumps(state).decode()
    except TypeError:  # "Recursion limit reached"
        return json.dumps(state, separators=(",", ":"))


def add_request(rows: Rows, event: TaskRequested) -> None:
    """A project from the earliest `task.requested` of a batch (the database keeps the
    earliest too, by time then task id)."""
    known = rows.projects.get(event.project_id)
    if known is not None and (known["created_at"], known["first_task_id"]) <= (
        event.occurred_at,
        event.task_id,
    ):
        return
    rows.projects[event.project_id] = {
        "project_id": event.project_id,
        "owner": event.owner,
        "title": event.payload.title,
        "content": event.payload.content,
        "settings": event.payload.settings.model_dump_json(),
        "created_at": event.occurred_at,
        "first_task_id": event.task_id,
    }

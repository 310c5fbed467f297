"""From log records to read-model rows: pure functions, no database (DESIGN §4).

`updates_to_rows` turns a batch of `progress.updates` records into history rows, the latest
task row per task and the finished stage attempts; `project_row` turns a `task.requested` into
a project. Updates are read as plain JSON (the fold wrote and validated them), which keeps a
rebuild of millions of updates fast.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from ytmaker_shared.events import TaskRequested
from ytmaker_shared.progress import StageStatus

_FINISHED = {StageStatus.COMPLETED, StageStatus.SKIPPED, StageStatus.FAILED, StageStatus.CANCELLED}


_TASK_FIELDS = ("project_id", "owner", "status", "progress")


class BadUpdate(ValueError):
    """A `progress.updates` record that is not an update."""


@dataclass
class Rows:
    """What one batch of records writes; each collection is free of duplicate keys.

    Task rows are built once per batch from the latest update of each task (`latest`), not
    per update: a rebuild reads millions of updates and most tasks have many in one batch."""

    history: list[dict[str, Any]] = field(default_factory=list)
    stage_runs: dict[tuple[str, str, int], dict[str, Any]] = field(default_factory=dict)
    projects: dict[str, dict[str, Any]] = field(default_factory=dict)
    latest: dict[str, tuple[int, dict[str, Any], str]] = field(default_factory=dict)
    _finished_seen: dict[tuple[str, str, int], tuple[str, str]] = field(default_factory=dict)

    def task_rows(self) -> list[dict[str, Any]]:
        """Each task's row, from its latest update in the batch (built on each call)."""
        return [
            _task_row(task_id, offset, state, occurred)
            for task_id, (offset, state, occurred) in self.latest.items()
        ]


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def add_update(rows: Rows, offset: int, epoch: str | None, value: bytes) -> dict[str, Any]:
    """Add one update record; returns the parsed update. Raises BadUpdate."""
    try:
        update = orjson.loads(value)
        state = update["state"]
        task_id = update["task_id"]
        occurred_at = update["occurred_at"]
        occurred = parse_time(occurred_at)
        missing = [name for name in _TASK_FIELDS if name not in state]
    except (ValueError, KeyError, TypeError) as exc:
        raise BadUpdate(repr(exc)) from exc
    if missing:
        raise BadUpdate(f"the state lacks {missing}")
    state["offset"], state["epoch"] = offset, epoch
    rows.history.append(
        {
            "task_id": task_id,
            "offset": offset,
            "epoch": epoch,
            "event_id": update.get("event_id", ""),
            "type": update.get("type", ""),
            "progress": state.get("progress", 0.0),
            "current_step": state.get("current_step"),
            "total_steps": state.get("total_steps"),
            "completed_steps": state.get("completed_steps"),
            "message": state.get("message") or "",
            "status": state.get("status", ""),
            "update_metadata": value.decode(),
            "created_at": occurred,
        }
    )
    previous = rows.latest.get(task_id)
    if previous is None or previous[0] < offset:
        rows.latest[task_id] = (offset, state, occurred_at)
    for stage, st in (state.get("stages") or {}).items():
        if st.get("status") in _FINISHED and st.get("finished_at"):
            _add_stage_run(rows, task_id, stage, st, state["owner"])
    return dict(update)


def _add_stage_run(rows: Rows, task_id: str, stage: str, st: dict[str, Any], owner: str) -> None:
    """A finished stage attempt; the same attempt in a later update is skipped unless its
    status or finish time changed (each update repeats every finished stage)."""
    key = (task_id, stage, int(st.get("attempt", 0)))
    seen = (st["status"], st["finished_at"])
    if rows._finished_seen.get(key) == seen:
        return
    rows._finished_seen[key] = seen
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


def _task_row(task_id: str, offset: int, state: dict[str, Any], occurred: str) -> dict[str, Any]:
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
        "state": json.dumps(state, separators=(",", ":")),
    }


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

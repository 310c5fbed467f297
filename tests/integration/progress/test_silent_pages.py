"""The stall watch reads the silent tasks a page at a time (`Store.silent_tasks(after=...)`):
every silent task once, longest silent first, ties in task order, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from ytmaker_dev.scenario import run_events
from ytmaker_progress.fold import apply
from ytmaker_progress.readmodel.rows import Rows, add_update
from ytmaker_progress.readmodel.store import Store

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def _update(task_id: str, silent_s: float) -> bytes:
    """A queued task's update (its request, folded), dated `silent_s` before NOW."""
    ((_, requested),) = run_events(task_id, start=NOW - timedelta(seconds=silent_s))[:1]
    state, _ = apply(None, requested)
    task = state.task.model().model_dump(mode="json")
    return json.dumps(
        {"task_id": task_id, "occurred_at": task["updated_at"], "state": task}
    ).encode()


def test_pages_of_silent_tasks_hold_each_once_in_order(database_url: str) -> None:
    silences = {"t-a": 500.0, "t-b": 400.0, "t-c": 400.0, "t-d": 300.0, "t-e": 200.0}
    store = Store(database_url, clock=lambda: NOW)
    try:
        rows = Rows()
        for offset, (task_id, silent_s) in enumerate(silences.items()):
            add_update(rows, offset, "ep", _update(task_id, silent_s))
        store.write(rows, {})
        seen: list[str] = []
        after = None
        while True:
            page = store.silent_tasks(NOW, limit=2, after=after)
            seen += [state["task_id"] for state in page]
            if len(page) < 2:
                break
            after = (datetime.fromisoformat(page[-1]["silent_since"]), page[-1]["task_id"])
    finally:
        store.close()
    assert seen == ["t-a", "t-b", "t-c", "t-d", "t-e"]  # t-b and t-c tie: by task id

"""The read model forgets finished tasks after the retention (`Store.cleanup`), counted from the
earlier of the task's own time and when the read model stored it, as the stall watch counts a
task's silence (decision 0124): a finished task dated in the future (a clock far ahead, a
hostile event) would otherwise stay for ever."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ytmaker_progress.readmodel.rows import Rows, add_update
from ytmaker_progress.readmodel.store import Store

NOW = datetime(2026, 12, 1, tzinfo=UTC)  # the read side's clock when it stored the updates
RETENTION = timedelta(days=7)


def _finished(task_id: str, at: datetime, status: str = "completed") -> bytes:
    state = {
        "task_id": task_id,
        "project_id": "p",
        "owner": "alice",
        "status": status,
        "progress": 100.0,
        "stages": {},
        "updated_at": at.isoformat(),
    }
    update = {"task_id": task_id, "occurred_at": at.isoformat(), "state": state}
    return json.dumps(update).encode()


def test_a_finished_task_dated_in_the_future_is_cleaned_up_after_the_retention(
    tmp_path: Path,
) -> None:
    store = Store(f"sqlite:///{tmp_path / 'read.db'}", clock=lambda: NOW)
    try:
        rows = Rows()
        add_update(rows, 0, "ep", _finished("t-ahead", NOW + timedelta(days=365)))
        add_update(rows, 1, "ep", _finished("t-now", NOW, "failed"))
        add_update(rows, 2, "ep", _finished("t-long-ago", NOW - timedelta(days=30)))  # a rebuild
        store.write(rows, {})

        assert store.cleanup(NOW - RETENTION) == 1  # by its own time: long past the retention
        assert store.task("t-long-ago") is None and store.task("t-ahead") is not None
        assert store.cleanup(NOW + RETENTION) == 2  # the retention after they were stored
        assert store.task("t-ahead") is None and store.task("t-now") is None
        assert store.history("t-ahead") == []
    finally:
        store.close()

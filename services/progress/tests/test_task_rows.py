"""A task row's `state` column: written fast, read back as the state, compared as JSON."""

from __future__ import annotations

import json
from collections import OrderedDict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from ytmaker_progress.readmodel.rows import Rows, add_update
from ytmaker_progress.readmodel.store import Store
from ytmaker_progress.rebuild import differences
from ytmaker_progress.runners.sink import _forget_oldest


def update(task_id: str, **state: Any) -> bytes:
    base = {
        "project_id": "p",
        "owner": "alice",
        "status": "running",
        "progress": 0.00001,  # `json` writes 1e-05, orjson 0.00001
        "message": "été 🎬",  # `json` escapes it, orjson writes UTF-8
        "stages": {},
    }
    return json.dumps(
        {
            "type": "progress",
            "task_id": task_id,
            "event_id": "e1",
            "occurred_at": "2026-12-01T10:00:00Z",
            "state": base | state,
        }
    ).encode()


def nested(depth: int) -> Any:
    value: Any = []
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize("depth", [1, 300], ids=["flat", "deeper than orjson writes"])
def test_a_task_row_holds_the_state_it_was_given(depth: int) -> None:
    rows = Rows()
    add_update(rows, 7, "ep", update("t", result={"deep": nested(depth)}))
    [row] = rows.task_rows()
    state = json.loads(row["state"])
    assert state["result"]["deep"] == nested(depth)
    assert state["message"] == "été 🎬"
    assert state["progress"] == 0.00001
    assert (state["offset"], state["epoch"]) == (7, "ep")


def test_two_read_models_that_spell_a_state_differently_compare_equal(tmp_path: Path) -> None:
    rows = Rows()
    add_update(rows, 3, "ep", update("t"))
    stores = [Store(f"sqlite:///{tmp_path / name}.db") for name in ("a", "b")]
    try:
        for store in stores:
            store.write(rows, {("updates", 0): (4, "ep")})
        # what an earlier version wrote: `json`'s spelling of the same state
        with stores[1].engine.begin() as conn:
            [spelled] = conn.exec_driver_sql("SELECT state FROM tasks").scalars()
            respelled = json.dumps(json.loads(spelled), separators=(",", ":"))
            assert respelled != spelled
            conn.exec_driver_sql("UPDATE tasks SET state = ?", (respelled,))
        assert differences(*stores) == []

        with stores[1].engine.begin() as conn:  # a different state is still a difference
            conn.exec_driver_sql("UPDATE tasks SET state = ?", (respelled.replace("alice", "bob"),))
        assert differences(*stores) != []
    finally:
        for store in stores:
            store.close()


def test_sqlites_driver_path_stores_what_sqlalchemy_stores(tmp_path: Path) -> None:
    """The sink hands SQLite's driver tuples for history, task and stage rows; a store
    without that path (SQLAlchemy's parameters, as for PostgreSQL) must store the same."""
    finished = {"status": "completed", "attempt": 2, "progress": 100}
    times = {"started_at": "2026-12-01T09:59:58.5Z", "finished_at": "2026-12-01T10:00:00+00:00"}
    batches = [
        [update("t1"), update("t2", status="queued", created_at="2026-12-01T09:00:00.000001Z")],
        [
            update("t1", progress=50.5, stages={"script": finished | times}),
            update(
                "t2", stages={"images": {"status": "failed", "finished_at": times["finished_at"]}}
            ),
        ],
        [update("t1", status="completed", progress=100, stages={"script": finished | times})],
    ]
    stored_at = datetime(2026, 12, 1, 10, 0, 0, 5, tzinfo=UTC)
    fast, core = (
        Store(f"sqlite:///{tmp_path / name}.db", clock=lambda: stored_at)
        for name in ("fast", "core")
    )
    core._driver = None
    try:
        offset = 0
        for batch in batches:
            rows = Rows()
            for value in batch:
                add_update(rows, offset, "ep", value)
                offset += 1
            for store in (fast, core):
                store.write(rows, {("updates", 0): (offset, "ep")})
        for table in ("progress_history", "tasks", "stage_runs", "sink_positions"):
            query = f"SELECT * FROM {table} ORDER BY 1, 2"
            with fast.engine.connect() as a, core.engine.connect() as b:
                stored = a.exec_driver_sql(query).all()
                assert stored == b.exec_driver_sql(query).all()
                assert stored, table
    finally:
        fast.close()
        core.close()


def test_a_finished_stage_is_written_once_across_the_sinks_batches() -> None:
    """Every update repeats its task's finished stages; the sink hands each batch what it
    has already added, so an attempt is written again only if it changed, and forgets the
    oldest beyond its bound (forgetting one only writes it once more)."""
    done = {"status": "completed", "attempt": 1, "finished_at": "2026-12-01T10:00:00Z"}
    seen: OrderedDict[tuple[str, str, int], tuple[str, str]] = OrderedDict()
    first, second, third = (Rows(finished_seen=seen) for _ in range(3))
    add_update(first, 1, "ep", update("t", stages={"script": done}))
    add_update(second, 2, "ep", update("t", stages={"script": done, "images": done}))
    failed_later = done | {"status": "failed", "finished_at": "2026-12-01T10:00:05Z"}
    add_update(third, 3, "ep", update("t", stages={"script": done, "images": failed_later}))
    assert list(first.stage_runs) == [("t", "script", 1)]
    assert list(second.stage_runs) == [("t", "images", 1)]
    assert [r["status"] for r in third.stage_runs.values()] == ["failed"]

    _forget_oldest(seen, 1)
    assert list(seen) == [("t", "images", 1)]

"""A task row's `state` column: written fast, read back as the state, compared as JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ytmaker_progress.readmodel.rows import Rows, add_update
from ytmaker_progress.readmodel.store import Store
from ytmaker_progress.rebuild import differences


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

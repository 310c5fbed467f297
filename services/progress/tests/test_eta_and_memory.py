"""The ETA estimate and the in-memory recent history (pure parts of the read side)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from ytmaker_progress.eta import estimate
from ytmaker_progress.readmodel.memory import RecentHistory
from ytmaker_progress.readmodel.rows import Rows, StoredUpdate, add_update
from ytmaker_progress.readmodel.store import Store

AVERAGES = {
    "script": 10.0,
    "images": 30.0,
    "audio": 5.0,
    "avatars": 8.0,
    "render": 20.0,
    "upload": 4.0,
}


def test_eta_sums_what_is_left_with_parallel_assets_as_the_slowest() -> None:
    state = {
        "status": "running",
        "stages": {"script": {"status": "running", "progress": 50.0}},
    }
    assert estimate(state, AVERAGES) == 5.0 + 30.0 + 20.0 + 4.0
    state["stages"] = {
        "script": {"status": "completed", "progress": 100.0},
        "images": {"status": "running", "progress": 90.0},
        "avatars": {"status": "running", "progress": 0.0},
    }
    assert estimate(state, AVERAGES) == 8.0 + 20.0 + 4.0


def test_eta_is_unknown_without_durations_or_when_finished() -> None:
    assert estimate({"status": "running", "stages": {}}, {"script": 1.0}) is None
    assert estimate({"status": "completed", "stages": {}}, AVERAGES) is None


def test_eta_counts_a_stage_without_progress_as_not_started() -> None:
    state = {"status": "running", "stages": {"script": {"status": "pending", "progress": None}}}
    assert estimate(state, AVERAGES) == 10.0 + 30.0 + 20.0 + 4.0


def test_the_read_models_averages_leave_out_a_stage_that_finished_before_it_started(
    tmp_path: Path,
) -> None:
    """A clock that jumped back during a stage gives it a negative duration: the ETA
    projector's window leaves it out, and so must the averages the API estimates with (a
    negative average made a negative `eta_seconds`)."""
    rows = Rows()
    for offset, (task_id, finished) in enumerate((("t-1", "10:01:00"), ("t-2", "09:50:00"))):
        script = {"status": "completed", "attempt": 1, "started_at": "2026-12-01T10:00:00Z"}
        script["finished_at"] = f"2026-12-01T{finished}Z"
        state = {"project_id": "p", "owner": "alice", "status": "running", "progress": 20.0}
        update = {"task_id": task_id, "occurred_at": "2026-12-01T10:01:00Z"}
        update["state"] = state | {"stages": {"script": script}}
        add_update(rows, offset, "ep", json.dumps(update).encode())
    store = Store(f"sqlite:///{tmp_path / 'read.db'}")
    try:
        store.write(rows, {})
        averages = store.recent_stage_durations(datetime(2026, 12, 1, tzinfo=UTC))
    finally:
        store.close()
    assert averages == {"script": 60.0}


def item(offset: int) -> StoredUpdate:
    update = {"task_id": "t", "type": "progress", "state": {"progress": offset}}
    return (offset, "e", json.dumps(update))


def test_memory_keeps_the_last_n_in_order_and_merges_stored_items() -> None:
    memory = RecentHistory(per_task=3)
    for offset in (5, 7, 7, 9, 11):
        memory.add("t", item(offset))
    assert [i["offset"] for i in memory.items("t")] == [7, 9, 11]
    assert not memory.complete("t")
    memory.merge("t", [item(1), item(3), item(5), item(7)])
    assert memory.complete("t")
    assert [i["offset"] for i in memory.items("t", since=7)] == [9, 11]
    [read] = memory.items("t", since=7, limit=1)  # parsed, its state carrying its position
    assert read == {
        "offset": 9,
        "epoch": "e",
        "update": {
            "task_id": "t",
            "type": "progress",
            "state": {"progress": 9, "offset": 9, "epoch": "e"},
        },
    }
    memory.drop("t")
    assert memory.items("t") == [] and memory.complete("t")


def test_memory_forgets_the_least_recently_updated_tasks_past_its_bytes() -> None:
    one = memory_size([item(1)])  # every item below has a one-digit offset: the same size
    memory = RecentHistory(per_task=3, max_bytes=6 * one)
    for offset in range(1, 4):
        memory.add("a", item(offset))
        memory.add("b", item(offset))
    memory.merge("b", [])  # read since: complete, and the most recently used
    assert memory.size == 6 * one and memory.items("a") and memory.complete("b")
    memory.add("c", item(4))  # 7 updates' worth: "a", updated longest ago, goes
    assert memory.items("a") == [] and not memory.complete("a")  # read from the database again
    assert [i["offset"] for i in memory.items("b")] == [1, 2, 3] and memory.complete("b")
    assert memory.size == 4 * one
    memory.drop("b")
    assert memory.size == one
    for offset in range(5, 10):  # the per-task bound still holds
        memory.add("c", item(offset))
    assert [i["offset"] for i in memory.items("c")] == [7, 8, 9] and memory.size == 3 * one


def memory_size(updates: list[StoredUpdate]) -> int:
    memory = RecentHistory()
    for update in updates:
        memory.add("t", update)
    return memory.size

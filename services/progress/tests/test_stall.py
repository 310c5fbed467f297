"""Stalled tasks (stall.py): which stages a task waits on, when its silence is a stall, and the
events that fail it, folded like any other."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ytmaker_dev.scenario import run_events
from ytmaker_progress.fold import Folded, apply
from ytmaker_progress.readmodel.rows import Rows, add_update
from ytmaker_progress.readmodel.store import Store
from ytmaker_progress.stall import StallPolicy, awaited_stages, stall_events, stalled
from ytmaker_shared.events import Event
from ytmaker_shared.progress import TaskStatus
from ytmaker_shared.stages import Stage

POLICY = StallPolicy(default_limit_s=60, limits_s={"render": 600}, grace_s=30)
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def folded(events: list[Event]) -> Folded:
    state = None
    for event in events:
        state, _ = apply(state, event)
    assert state is not None
    return state


def state_after(n: int, **kw: Any) -> dict[str, Any]:
    """The task's state (as the read model serves it) after its first `n` events."""
    events = [e for _, e in run_events("t-1", start=T0, **kw)][:n]
    return folded(events).task.model().model_dump(mode="json")


def test_a_queued_task_waits_on_the_script() -> None:
    assert awaited_stages(state_after(1)) == [Stage.SCRIPT]


def test_a_running_stage_is_awaited() -> None:
    assert awaited_stages(state_after(3)) == [Stage.SCRIPT]


def test_after_the_script_the_three_asset_stages_are_awaited() -> None:
    events = [e for _, e in run_events("t-1", start=T0)]
    done = next(i for i, e in enumerate(events) if e.type == "stage.completed")
    assert set(awaited_stages(state_after(done + 1))) == {
        Stage.IMAGES,
        Stage.AUDIO,
        Stage.AVATARS,
    }


def test_render_waits_for_every_asset_stage() -> None:
    events = [e for _, e in run_events("t-1", start=T0)]
    first_render = next(i for i, e in enumerate(events) if e.stage is Stage.RENDER)
    assert awaited_stages(state_after(first_render)) == [Stage.RENDER]  # assets done: next
    assert awaited_stages(state_after(first_render + 1)) == [Stage.RENDER]  # started
    last_asset = max(i for i, e in enumerate(events) if e.stage in (Stage.AUDIO, Stage.AVATARS))
    waiting = awaited_stages(state_after(last_asset))  # one asset stage still running
    assert Stage.RENDER not in waiting and waiting


def test_silence_within_the_limit_and_grace_is_no_stall() -> None:
    state = state_after(3)
    updated = datetime.fromisoformat(state["updated_at"])
    assert stalled(state, updated + timedelta(seconds=90), T0, POLICY) is None
    stall = stalled(state, updated + timedelta(seconds=91), T0, POLICY)
    assert stall is not None and stall.stage is Stage.SCRIPT and stall.allowed_s == 90


def test_a_stage_with_a_longer_limit_gets_it() -> None:
    events = [e for _, e in run_events("t-1", start=T0)]
    first_render = next(i for i, e in enumerate(events) if e.stage is Stage.RENDER)
    state = state_after(first_render + 1)
    updated = datetime.fromisoformat(state["updated_at"])
    assert stalled(state, updated + timedelta(seconds=600), T0, POLICY) is None
    assert stalled(state, updated + timedelta(seconds=631), T0, POLICY) is not None


def test_silence_counts_from_the_watch_start_after_a_downtime() -> None:
    state = state_after(3)
    long_after = datetime.fromisoformat(state["updated_at"]) + timedelta(days=3)
    assert stalled(state, long_after, long_after - timedelta(seconds=10), POLICY) is None
    assert stalled(state, long_after, long_after - timedelta(seconds=91), POLICY) is not None


@pytest.mark.parametrize("ending", ["completed", "failed", "cancelled"])
def test_finished_tasks_never_stall(ending: str) -> None:
    state = state_after(10_000, ending=ending)
    assert stalled(state, T0 + timedelta(days=30), T0, POLICY) is None


def test_a_paused_task_never_stalls() -> None:
    events = [e for _, e in run_events("t-1", start=T0, pause=True)]
    paused = next(i for i, e in enumerate(events) if e.type == "task.pause_requested")
    state = state_after(paused + 1, pause=True)
    assert state["status"] == "paused"
    assert stalled(state, T0 + timedelta(days=30), T0, POLICY) is None


def test_the_stall_fails_the_task_once_with_the_code_and_the_stage() -> None:
    events = [e for _, e in run_events("t-1", start=T0)][:3]
    state = state_after(3)
    now = datetime.fromisoformat(state["updated_at"]) + timedelta(hours=1)
    stall = stalled(state, now, T0, POLICY)
    assert stall is not None
    failed, cancel = stall_events(state, stall, "progress/test")
    again, cancel_again = stall_events(state, stall, "progress/other-replica")
    assert (failed.event_id, cancel.event_id) == (again.event_id, cancel_again.event_id)
    assert failed.event_id != cancel.event_id
    assert cancel.type == "task.cancel_requested" and "stalled" in cancel.payload.reason

    before = folded(events)
    after, updates = apply(before, failed)
    assert after.task.status is TaskStatus.FAILED
    assert after.task.error is not None and after.task.error.code == "stalled"
    assert "script" in after.task.error.message
    assert len(updates) == 1
    twice, none = apply(after, again)  # the same event from another replica: nothing
    assert none == [] and twice.task == after.task


@pytest.mark.parametrize("updated_at", [None, "", "2026-01-01T01:00:00+01:00"])
def test_the_read_model_gives_the_watch_when_each_silent_task_was_last_updated(
    tmp_path: Path, updated_at: str | None
) -> None:
    """An update whose state has no `updated_at` (the read model takes it: the update's own
    time counts) or spells it with another offset: the watch still finds the stall."""
    state = state_after(3)
    state["updated_at"] = updated_at
    update = {"task_id": "t-1", "occurred_at": "2026-01-01T00:00:00Z", "state": state}
    rows = Rows()
    add_update(rows, 0, "ep", json.dumps(update).encode())
    store = Store(f"sqlite:///{tmp_path / 'read.db'}")
    try:
        store.write(rows, {})
        now = T0 + timedelta(hours=1)
        [silent] = store.silent_tasks(now - timedelta(minutes=1))
    finally:
        store.close()
    stall = stalled(silent, now, T0, POLICY)
    assert stall is not None and stall.silent_s == 3600
    failed, _ = stall_events(silent, stall, "progress/test")
    assert failed.task_id == "t-1"


def test_silence_counts_from_when_the_read_model_stored_an_update_dated_in_the_future() -> None:
    state = state_after(3)
    stored = datetime.fromisoformat(state["updated_at"])
    state["updated_at"] = (stored + timedelta(days=365)).isoformat()  # a clock far ahead
    state["silent_since"] = stored.isoformat()
    assert stalled(state, stored + timedelta(seconds=90), T0, POLICY) is None
    stall = stalled(state, stored + timedelta(seconds=91), T0, POLICY)
    assert stall is not None and stall.silent_s == 91


def _ahead(at: datetime) -> bytes:
    """An update of t-1 (its first three events) dated `at`."""
    state = state_after(3)
    state["updated_at"] = at.isoformat()
    return json.dumps({"task_id": "t-1", "occurred_at": at.isoformat(), "state": state}).encode()


def _store(store: Store, offset: int, value: bytes) -> None:
    rows = Rows()
    add_update(rows, offset, "ep", value)
    store.write(rows, {})


NOW = datetime(2026, 12, 1, tzinfo=UTC)  # the read side's clock


def test_a_task_whose_update_is_dated_in_the_future_still_stalls(tmp_path: Path) -> None:
    """One event dated far ahead (a wrong clock, a hostile writer) must not make its task
    immune to the watch: its silence counts from when the read model stored it."""
    value = _ahead(NOW + timedelta(days=365))
    stored = [NOW, NOW + timedelta(seconds=2)]  # two read sides, each with its own database
    stores = [
        Store(f"sqlite:///{tmp_path / name}.db", clock=lambda at=at: at)
        for name, at in zip("ab", stored, strict=True)
    ]
    try:
        events = []
        for store, at in zip(stores, stored, strict=True):
            _store(store, 0, value)
            assert store.silent_tasks(at + timedelta(minutes=1, seconds=30)) != []
            now = at + timedelta(hours=1)
            [silent] = store.silent_tasks(now - timedelta(minutes=1))
            assert datetime.fromisoformat(silent["silent_since"]) == at
            assert datetime.fromisoformat(silent["updated_at"]) == NOW + timedelta(days=365)
            assert stalled(silent, at + timedelta(seconds=90), NOW, POLICY) is None
            stall = stalled(silent, now, NOW, POLICY)
            assert stall is not None and stall.silent_s == 3600
            failed, cancel = stall_events(silent, stall, "progress/test")
            events.append((failed.event_id, cancel.event_id))
        assert events[0] == events[1]  # every watch writes the same events: the fold takes one
        assert stores[0].silent_tasks(NOW) == []  # not silent before it was stored
    finally:
        for store in stores:
            store.close()


def test_each_later_update_of_a_task_dated_in_the_future_starts_its_silence_again(
    tmp_path: Path,
) -> None:
    clock = iter([NOW, NOW + timedelta(minutes=10), NOW + timedelta(minutes=20)])
    store = Store(f"sqlite:///{tmp_path / 'read.db'}", clock=lambda: next(clock))
    try:
        later = NOW + timedelta(hours=1)
        _store(store, 0, _ahead(NOW + timedelta(days=365)))
        _store(store, 1, _ahead(NOW + timedelta(days=365, seconds=1)))
        [silent] = store.silent_tasks(later)
        assert silent["offset"] == 1
        assert datetime.fromisoformat(silent["silent_since"]) == NOW + timedelta(minutes=10)
        _store(store, 0, _ahead(NOW + timedelta(days=365)))  # an older offset again: no change
        [again] = store.silent_tasks(later)
        assert again["silent_since"] == silent["silent_since"]
    finally:
        store.close()


def test_an_update_dated_in_the_past_counts_from_its_own_time(tmp_path: Path) -> None:
    """Stored long after it happened (a read side catching up, a rebuild): its own time."""
    store = Store(f"sqlite:///{tmp_path / 'read.db'}", clock=lambda: NOW + timedelta(days=3))
    try:
        _store(store, 0, _ahead(NOW))
        [silent] = store.silent_tasks(NOW + timedelta(hours=1))
        assert datetime.fromisoformat(silent["silent_since"]) == NOW
    finally:
        store.close()


class Sent:
    """The watch's producer (`EventProducer.send`), recording what it sends."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    async def send(self, topic: Any, event: Event) -> None:
        self.events.append(event)


def _silent_for(task_id: str, events: int, silent: timedelta, now: datetime) -> bytes:
    """An update of `task_id` after its first `events` events, the last `silent` before `now`."""
    timeline = run_events(task_id, start=T0)
    last = timeline[events - 1][1].occurred_at
    shifted = [e.model_copy(update={"occurred_at": e.occurred_at - last + now - silent})
               for _, e in timeline[:events]]  # fmt: skip
    state = folded(shifted).task.model().model_dump(mode="json")
    at = state["updated_at"]
    return json.dumps({"task_id": task_id, "occurred_at": at, "state": state}).encode()


async def test_a_stalled_task_behind_a_page_of_silent_ones_is_still_failed(tmp_path: Path) -> None:
    """The watch asks for the longest silent first, a page at a time: renders silent longer
    than a stalled script but within their own longer limit fill the first page."""
    from ytmaker_progress.runners.stall import StallWatch
    from ytmaker_progress.settings import ProgressSettings

    now = datetime.now(UTC)
    store = Store(f"sqlite:///{tmp_path / 'read.db'}")
    try:
        for offset, task in enumerate(("t-render-1", "t-render-2", "t-render-3")):
            _store(store, offset, _silent_for(task, 22, timedelta(seconds=500), now))
        _store(store, 3, _silent_for("t-script", 2, timedelta(seconds=300), now))
        watch = StallWatch(ProgressSettings(), store, lambda: True)
        watch.policy, watch.page = POLICY, 2  # render 600 s, script 60 s, grace 30 s
        sent = Sent()
        failed = await watch.check(sent, watching_since=now - timedelta(days=1))  # type: ignore[arg-type]
    finally:
        store.close()
    assert failed == 1
    assert {e.task_id for e in sent.events} == {"t-script"}

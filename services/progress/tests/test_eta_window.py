"""The ETA's pure parts: the hopping stage window, the fold's estimate rule, the threshold."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ytmaker_dev.scenario import run_events
from ytmaker_progress.eta import EtaEstimated, significant
from ytmaker_progress.fold import apply
from ytmaker_progress.runners.eta import EtaProjector
from ytmaker_progress.settings import ProgressSettings
from ytmaker_progress.window import StageWindow
from ytmaker_shared.progress import TaskStatus, UpdateType

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_the_window_averages_the_last_hour_and_hops_by_steps() -> None:
    window = StageWindow(size_s=3600, step_s=60)
    window.add("render", T0, 10.0)
    window.add("render", T0 + timedelta(minutes=30), 30.0)
    window.add("script", T0 + timedelta(minutes=30), 4.0)
    assert window.averages() == {"render": 20.0, "script": 4.0}
    window.advance(T0 + timedelta(minutes=61))  # the first sample's bucket left the window
    assert window.averages() == {"render": 30.0, "script": 4.0}
    window.add("render", T0, 1000.0)  # older than the window: ignored
    assert window.averages()["render"] == 30.0
    window.advance(T0 + timedelta(hours=3))
    assert window.averages() == {}


def test_the_window_refuses_a_step_longer_than_itself() -> None:
    with pytest.raises(ValueError):
        StageWindow(size_s=60, step_s=120)


def test_an_estimate_sets_eta_of_a_running_task_and_a_finished_task_has_none() -> None:
    events = [e for _, e in run_events("t-eta")]
    state, _ = apply(None, events[0])
    state, _ = apply(state, events[1])
    estimate = EtaEstimated(
        task_id="t-eta",
        project_id=state.task.project_id,
        owner="alice",
        eta_seconds=42.0,
        based_on_offset=1,
    )
    state, updates = apply(state, estimate)
    assert state.task.eta_seconds == 42.0
    assert [u.type for u in updates] == [UpdateType.PROGRESS]
    assert updates[0].event_type == "task.eta_estimated"
    again, updates = apply(state, estimate.model_copy(update={"event_id": "other"}))
    assert updates == [] and again.task == state.task  # the same estimate changes nothing
    for event in events[2:]:
        state, _ = apply(state, event)
    assert state.task.status is TaskStatus.COMPLETED
    assert state.task.eta_seconds is None
    late, updates = apply(state, estimate.model_copy(update={"event_id": "late"}))
    assert updates == [] and late.task == state.task


def test_only_significant_changes_are_worth_an_update() -> None:
    assert significant(None, 100.0)
    assert not significant(100.0, 96.0)
    assert not significant(100.0, 108.0)
    assert significant(100.0, 89.0)
    assert significant(10.0, 4.0)


def _running(updated_at: datetime, finished_at: datetime, seconds: float) -> dict[str, object]:
    """A running task's state (JSON) whose script stage took `seconds` up to `finished_at`."""
    return {
        "status": "running",
        "project_id": "p1",
        "owner": "alice",
        "updated_at": updated_at.isoformat(),
        "eta_seconds": None,
        "stages": {
            "script": {
                "status": "completed",
                "attempt": 1,
                "progress": 100.0,
                "started_at": (finished_at - timedelta(seconds=seconds)).isoformat(),
                "finished_at": finished_at.isoformat(),
            }
        },
    }


def test_an_update_dated_far_ahead_does_not_move_the_window_past_every_sample() -> None:
    """The window's clock is the updates' times; one dated year 9999 (a stage's clock, or a
    hostile record) moved it past every real sample for good: its own stood for the average,
    every later one was too old to count, until a restart."""
    projector = EtaProjector(ProgressSettings())
    now = datetime.now(UTC)
    far = datetime(9999, 12, 31, tzinfo=UTC)
    projector.saw({"t-far": (1, _running(far, far, 3000.0), far.isoformat())})
    projector.saw({"t-now": (2, _running(now, now, 30.0), now.isoformat())})
    assert projector.window.averages() == {"script": 30.0}

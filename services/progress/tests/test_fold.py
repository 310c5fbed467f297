"""The fold's rules, by feeding events; hypothesis for the invariants."""

from __future__ import annotations

from collections.abc import Iterable

from hypothesis import given, settings
from hypothesis import strategies as st

from ytmaker_dev.scenario import run_events
from ytmaker_progress.fold import Folded, apply
from ytmaker_shared.events import Event, StageProgressed, StageProgressPayload
from ytmaker_shared.progress import StageStatus, TaskStatus, UpdateType
from ytmaker_shared.stages import Stage


def fold_all(events: Iterable[Event], state: Folded | None = None) -> tuple[Folded, list]:
    updates = []
    for event in events:
        state, out = apply(state, event)
        updates.extend(out)
    assert state is not None
    return state, updates


def events_of(**kw) -> list[Event]:
    return [event for _, event in run_events("t-1", **kw)]


def test_a_completed_run_ends_at_100_with_every_stage_completed() -> None:
    state, updates = fold_all(events_of())
    task = state.task
    assert task.status is TaskStatus.COMPLETED
    assert task.progress == 100
    assert task.result == {"video": "file:///videos/t-1.mp4"}
    assert set(task.stages) == set(Stage)
    assert all(s.status is StageStatus.COMPLETED for s in task.stages.values())
    assert task.title == "Video t-1"
    assert updates[-1].type is UpdateType.STATUS
    assert updates[-1].state == task


def test_weights_script_is_20_then_assets_add_up() -> None:
    events = events_of()
    script_done = next(
        i for i, e in enumerate(events) if e.type == "stage.completed" and e.stage == "script"
    )
    state, _ = fold_all(events[: script_done + 1])
    assert state.task.progress == 20


def test_parallel_asset_stages_each_count_their_weight() -> None:
    base = events_of()[0]

    def progress(stage: Stage, value: float) -> Event:
        return base.caused(
            StageProgressed,
            producer="assets",
            stage=stage,
            payload=StageProgressPayload(progress=value),
        )

    state, _ = fold_all([base, progress(Stage.IMAGES, 40), progress(Stage.AUDIO, 50)])
    assert state.task.progress == 25 * 0.4 + 10 * 0.5
    assert state.task.status is TaskStatus.RUNNING


def test_a_retried_stage_resets_its_progress_but_not_the_overall_figure() -> None:
    events = events_of(retry_stage=Stage.IMAGES)
    retry = next(i for i, e in enumerate(events) if e.type == "stage.retrying")
    before, _ = fold_all(events[:retry])
    after, updates = fold_all(events[retry : retry + 1], before)
    assert after.task.stages[Stage.IMAGES].attempt == 2
    assert after.task.stages[Stage.IMAGES].progress == 0
    assert after.task.sub_progress == 0
    assert after.task.progress == before.task.progress
    assert updates[0].type is UpdateType.ERROR
    final, _ = fold_all(events[retry:], before)
    assert final.task.stages[Stage.IMAGES].status is StageStatus.COMPLETED
    assert final.task.progress == 100


def test_a_failed_run_keeps_the_error_and_its_progress() -> None:
    state, updates = fold_all(events_of(ending="failed"))
    assert state.task.status is TaskStatus.FAILED
    assert state.task.error is not None and state.task.error.code == "boom"
    assert state.task.stages[Stage.RENDER].status is StageStatus.FAILED
    assert 65 < state.task.progress < 100
    assert updates[-1].type is UpdateType.ERROR


def test_pause_and_resume() -> None:
    events = events_of(pause=True)
    pause = next(i for i, e in enumerate(events) if e.type == "task.pause_requested")
    paused, updates = fold_all(events[: pause + 1])
    assert paused.task.status is TaskStatus.PAUSED
    assert updates[-1].type is UpdateType.STATUS
    resumed, updates = fold_all(events[pause + 1 : pause + 2], paused)
    assert resumed.task.status is TaskStatus.RUNNING


def test_terminal_states_are_final_and_later_events_are_counted() -> None:
    events = events_of(ending="cancelled")
    state, _ = fold_all(events)
    assert state.task.status is TaskStatus.CANCELLED
    late = events_of()[5:9]  # progress of a run that goes on regardless
    after, updates = fold_all(late, state)
    assert updates == []
    assert after.task == state.task
    assert after.ignored == len(late)


def test_a_duplicate_changes_nothing_and_publishes_nothing() -> None:
    events = events_of()
    state, _ = fold_all(events[:6])
    again, updates = apply(state, events[4])
    assert updates == []
    assert again == state


def test_an_event_with_no_visible_change_publishes_nothing() -> None:
    events = events_of()
    state, _ = fold_all(events[:4])  # requested, started, progress 25
    stale = events[2].model_copy(update={"event_id": "another-id"})  # same figures again
    after, updates = apply(state, stale)
    assert updates == []
    assert after.task == state.task


# --- invariants (hypothesis) --------------------------------------------------------------

SCENARIOS = [
    events_of(),
    events_of(ending="failed"),
    events_of(ending="cancelled"),
    events_of(retry_stage=Stage.RENDER, pause=True),
]


@st.composite
def redelivered(draw: st.DrawFn) -> tuple[list[Event], list[Event]]:
    """A scenario and the same stream with events duplicated or replayed after themselves."""
    events = draw(st.sampled_from(SCENARIOS))
    out: list[Event] = []
    for i, event in enumerate(events):
        out.append(event)
        if draw(st.booleans()):
            # redeliver a recent event (a duplicate, or the tail of a replay)
            out.append(events[draw(st.integers(min_value=max(0, i - 10), max_value=i))])
    return events, out


@given(redelivered())
@settings(max_examples=200, deadline=None)
def test_redelivery_or_duplication_yields_the_same_state(case) -> None:
    original, noisy = case
    clean, clean_updates = fold_all(original)
    dirty, dirty_updates = fold_all(noisy)
    assert dirty == clean
    assert [u.event_id for u in dirty_updates] == [u.event_id for u in clean_updates]


@given(st.sampled_from(SCENARIOS).flatmap(st.permutations))
@settings(max_examples=300, deadline=None)
def test_overall_progress_never_decreases_and_terminal_is_final(events: list[Event]) -> None:
    state: Folded | None = None
    last_progress = 0.0
    finished = None
    for event in events:
        state, updates = apply(state, event)
        assert state.task.progress >= last_progress
        last_progress = state.task.progress
        if finished is not None:
            assert state.task == finished
            assert updates == []
        elif state.task.status.terminal:
            finished = state.task
        for update in updates:
            assert update.state == state.task

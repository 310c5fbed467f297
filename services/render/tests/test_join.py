"""The render join: images, audio and avatars all done, in any order, redeliveries included."""

from __future__ import annotations

import itertools

from ytmaker_render.join import JoinState, apply, fires
from ytmaker_shared.events import (
    Artifact,
    ErrorInfo,
    Event,
    StageCompleted,
    StageCompletedPayload,
    StageFailed,
    StageFailedPayload,
    StageProgressed,
    StageProgressPayload,
)
from ytmaker_shared.stages import Stage

BASE = {
    "task_id": "t1",
    "project_id": "p1",
    "owner": "u1",
    "producer": "assets/1",
    "correlation_id": "c1",
}
ART = Artifact(
    name="segment-01.png", uri="memory://x/t1/images/segment-01.png", size=1, sha256="0" * 64
)


def completed(stage: Stage, status: str = "completed", **fields: str) -> StageCompleted:
    payload = StageCompletedPayload(status=status, artifacts=(ART,))  # type: ignore[arg-type]
    return StageCompleted(**(BASE | fields), stage=stage, payload=payload)


def fold(events: list[Event], state: JoinState | None = None) -> JoinState:
    state = state or JoinState(task_id="t1")
    for event in events:
        state = apply(state, event)
    return state


def test_the_join_fires_once_all_three_are_done_in_any_order() -> None:
    events = [completed(Stage.IMAGES), completed(Stage.AUDIO), completed(Stage.AVATARS, "skipped")]
    for order in itertools.permutations(events):
        state = JoinState(task_id="t1")
        fired = []
        for event in order:
            state = apply(state, event)
            fired.append(fires(state, event))
        assert fired == [False, False, True]
        assert state.trigger == order[-1].event_id


def test_only_the_trigger_fires_again_when_redelivered() -> None:
    images, audio, avatars = (completed(s) for s in (Stage.IMAGES, Stage.AUDIO, Stage.AVATARS))
    state = fold([images, audio, avatars])
    assert fires(apply(state, avatars), avatars)  # redelivery of the trigger after a crash
    assert not fires(apply(state, images), images)
    again = completed(Stage.IMAGES)  # a second completion of a stage changes nothing
    assert apply(state, again) == state


def test_a_failed_asset_stage_means_render_never_starts() -> None:
    failed = StageFailed(
        **BASE,
        stage=Stage.AUDIO,
        payload=StageFailedPayload(error=ErrorInfo(code="x", message="y")),
    )
    state = fold([completed(Stage.IMAGES), failed, completed(Stage.AVATARS)])
    assert state.dead == "audio failed" and not state.ready
    late = completed(Stage.AUDIO)
    assert not fires(apply(state, late), late)


def test_other_tasks_stages_and_event_types_are_ignored() -> None:
    state = JoinState(task_id="t1")
    progress = StageProgressed(
        **BASE, stage=Stage.IMAGES, payload=StageProgressPayload(progress=50)
    )
    assert apply(state, progress) == state
    assert apply(state, completed(Stage.IMAGES, task_id="t2")) == state
    assert apply(state, completed(Stage.SCRIPT)) == state


def test_the_state_round_trips_through_json_as_the_store_keeps_it() -> None:
    state = fold([completed(Stage.IMAGES), completed(Stage.AUDIO)])
    assert JoinState.model_validate_json(state.model_dump_json()) == state

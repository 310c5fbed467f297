"""A task whose stage went silent is failed as `stalled` through the log: the fold, the read
model and every reader of `progress.updates` see it, and the stages get a cancel."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ytmaker_dev.scenario import run_events
from ytmaker_progress.settings import ProgressSettings
from ytmaker_shared.kafka import EventProducer
from ytmaker_shared.topics import Topic

from .conftest import publish, read_topic, read_updates
from .test_service import poll_json, service  # noqa: F401 - the fixture

pytestmark = [pytest.mark.kafka]


@pytest.fixture
def settings(settings: ProgressSettings) -> ProgressSettings:
    return settings.model_copy(
        update={
            "progress_stage_time_limit_s": 1.0,
            "progress_stall_grace_s": 1.0,
            "progress_stall_check_s": 0.3,
        }
    )


@pytest.fixture(params=["sqlite"])
def database_url(request: pytest.FixtureRequest, settings: ProgressSettings) -> str:
    return settings.progress_database_url


async def test_a_silent_task_fails_as_stalled_and_its_stages_are_cancelled(
    service: Any,  # noqa: F811 - the fixture of test_service
    publisher: EventProducer,
    settings: ProgressSettings,
) -> None:
    _, client = service
    stuck = run_events("t-stuck", owner="alice")[:3]  # requested, script started, one step
    done = run_events("t-done", owner="alice")
    await publish(publisher, [*stuck, *done])

    state = await poll_json(
        client, "/internal/v1/tasks/t-stuck", lambda s: s["status"] == "failed", timeout=30
    )
    assert state["error"]["code"] == "stalled"
    assert "script" in state["error"]["message"]
    finished = await poll_json(client, "/internal/v1/tasks/t-done", lambda s: True)
    assert finished["status"] == "completed"

    failures = [
        json.loads(r.value)
        for r in await read_topic(settings, Topic.TASKS)
        if json.loads(r.value)["type"] == "task.failed"
    ]
    assert {f["task_id"] for f in failures} == {"t-stuck"}
    assert len({f["event_id"] for f in failures}) == 1  # written again or not: one event
    cancels = [json.loads(r.value) for r in await read_topic(settings, Topic.CONTROL)]
    assert [(c["type"], c["task_id"]) for c in cancels][:1] == [
        ("task.cancel_requested", "t-stuck")
    ]
    stalled_updates = [
        u
        for _, _, u in await read_updates(settings)
        if u["task_id"] == "t-stuck" and (u["state"].get("error") or {}).get("code") == "stalled"
    ]
    assert len(stalled_updates) == 1  # the fold took the failure once


async def test_a_task_whose_latest_event_is_dated_in_the_future_still_stalls(
    service: Any,  # noqa: F811 - the fixture of test_service
    publisher: EventProducer,
) -> None:
    """One event dated a year ahead (a clock far off, a hostile producer) dates the task's
    latest update a year ahead: the watch counts its silence from when the read model stored
    it, by its own clock, not from a time that is a year away."""
    _, client = service
    ahead = datetime.now(UTC) + timedelta(days=365)
    await publish(publisher, run_events("t-ahead", owner="alice", start=ahead)[:3])

    state = await poll_json(
        client, "/internal/v1/tasks/t-ahead", lambda s: s["status"] == "failed", timeout=30
    )
    assert state["error"]["code"] == "stalled"
    assert datetime.fromisoformat(state["updated_at"]) >= ahead  # the task's own time stays

"""Running tasks carry an estimate of the time left (docs/decisions/0024-eta-window.md): the
ETA projector, fed by the read model's sink (0085), turns the last hour of completed stages
into estimates on `progress.eta`, and the fold publishes them as updates with `eta_seconds`, on
the real broker."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.support.wait import wait_until
from ytmaker_dev.scenario import run_events
from ytmaker_progress.eta import estimate
from ytmaker_progress.main import ProgressService
from ytmaker_progress.settings import ProgressSettings
from ytmaker_shared.events import StageCompleted
from ytmaker_shared.kafka import EventProducer

from .conftest import publish, read_updates

pytestmark = [pytest.mark.kafka]


async def test_running_tasks_get_an_eta_from_recent_stage_durations(
    settings: ProgressSettings, publisher: EventProducer
) -> None:
    start = datetime.now(UTC) - timedelta(minutes=20)
    s = settings
    service = ProgressService(s)
    stopping = asyncio.Event()
    running = asyncio.create_task(service.run(stopping))
    try:
        await wait_until(lambda: service.eta is not None and service.eta.caught_up, timeout=60)
        # three finished runs fill the window (no estimate before it knows every stage)
        for i in range(3):
            await publish(publisher, run_events(f"e-{i}", start=start + timedelta(minutes=i)))
        assert service.eta is not None
        eta = service.eta
        await wait_until(lambda: len(eta.window.averages()) == 6, timeout=60, what="averages")
        averages = dict(eta.window.averages())
        assert all(seconds > 0 for seconds in averages.values())

        live = run_events("e-live", start=start + timedelta(minutes=10))
        await publish(publisher, live[: len(live) // 3])

        def live_updates(items: list[tuple[int, int, dict[str, Any]]]) -> list[dict[str, Any]]:
            return [u for _, _, u in items if u["task_id"] == "e-live"]

        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while not any(u["state"]["eta_seconds"] for u in live_updates(await read_updates(s))):
            assert loop.time() < deadline, "no update of the running task carried an ETA"
            await asyncio.sleep(0.2)
        updates = live_updates(await read_updates(s))
        with_eta = next(i for i, u in enumerate(updates) if u["state"]["eta_seconds"])
        assert updates[with_eta]["event_type"] == "task.eta_estimated"
        # made from one of the task's earlier updates (the fold may have gone on meanwhile)
        earlier = [u["state"] for u in updates[:with_eta]]
        assert updates[with_eta]["state"]["eta_seconds"] in {
            estimate(state, averages) for state in earlier
        }
        assert updates[with_eta]["state"]["progress"] == earlier[-1]["progress"]

        await publish(publisher, live[len(live) // 3 :])
        deadline = loop.time() + 60
        while live_updates(await read_updates(s))[-1]["state"]["status"] != "completed":
            assert loop.time() < deadline, "the running task did not complete"
            await asyncio.sleep(0.2)
        final = live_updates(await read_updates(s))[-1]["state"]
        assert final["eta_seconds"] is None
        # the first run finished before the window knew every stage: no estimate for it
        first = [u for _, _, u in await read_updates(s) if u["task_id"] == "e-0"]
        assert not any(u["event_type"] == "task.eta_estimated" for u in first)
    finally:
        stopping.set()
        await running


def window_counts(service: ProgressService) -> dict[str, int]:
    """Completed attempts per stage in the projector's window."""
    assert service.eta is not None
    buckets = service.eta.window._buckets
    return {stage: sum(int(b[1]) for b in by.values()) for stage, by in buckets.items()}


def stored_counts(service: ProgressService) -> dict[str, int]:
    """Completed attempts per stage in the read model, finished within the last hour."""
    assert service.store is not None
    since = datetime.now(UTC) - timedelta(hours=1)
    counts: dict[str, int] = {}
    for _, stage, *_ in service.store.recent_stage_runs(since):
        counts[stage] = counts.get(stage, 0) + 1
    return counts


async def test_a_restarted_projector_starts_from_the_read_model_and_counts_each_attempt_once(
    settings: ProgressSettings, publisher: EventProducer
) -> None:
    start = datetime.now(UTC) - timedelta(minutes=30)
    finished = run_events("w-done", start=start)
    running = run_events("w-mid", start=start + timedelta(minutes=5))
    half = len(running) // 2

    async def started() -> tuple[ProgressService, asyncio.Event, asyncio.Task[None]]:
        service, stopping = ProgressService(settings), asyncio.Event()
        task = asyncio.create_task(service.run(stopping))
        await wait_until(lambda: service.eta is not None and service.eta.caught_up, timeout=60)
        return service, stopping, task

    service, stopping, task = await started()
    try:
        published = finished + running[:half]
        await publish(publisher, published)
        # every stage attempt completed so far, in both: a count that stops short of them
        # could be overtaken by the sink's last write as the service stops
        completed = Counter(e.stage for _, e in published if isinstance(e, StageCompleted))
        await wait_until(
            lambda: stored_counts(service) == window_counts(service) == completed,
            timeout=60,
            what="the window and the read model hold every completed attempt",
        )
        before = window_counts(service)
        assert before["script"] == 2 and before["upload"] == 1  # one run finished, one not
    finally:
        stopping.set()
        await task

    service, stopping, task = await started()  # nothing new: the window comes from the store
    try:
        assert window_counts(service) == before
        assert service.eta is not None and "w-mid" in service.eta.tasks
        # the running task's next updates repeat its finished stages: counted once, not twice
        await publish(publisher, running[half:])
        await wait_until(
            lambda: service.eta is not None and "w-mid" not in service.eta.tasks,
            timeout=60,
            what="the running task finished",
        )
        # the projector sees a batch before the sink has written it: wait for the write
        await wait_until(
            lambda: window_counts(service) == stored_counts(service),
            timeout=30,
            what="the read model to store what the window holds",
        )
        assert window_counts(service)["upload"] == 2
    finally:
        stopping.set()
        await task

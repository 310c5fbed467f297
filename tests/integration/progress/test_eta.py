"""Running tasks carry an estimate of the time left (docs/decisions/0024-eta-window.md): the
ETA projector turns the last hour of completed stages into estimates on `progress.eta`, and
the fold publishes them as updates with `eta_seconds`, on the real broker."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.support.wait import wait_until
from ytmaker_dev.scenario import run_events
from ytmaker_progress.eta import estimate
from ytmaker_progress.main import ProgressService
from ytmaker_progress.settings import ProgressSettings
from ytmaker_shared.kafka import EventProducer

from .conftest import publish, read_updates

pytestmark = [pytest.mark.kafka]


async def test_running_tasks_get_an_eta_from_recent_stage_durations(
    settings: ProgressSettings, publisher: EventProducer
) -> None:
    start = datetime.now(UTC) - timedelta(minutes=20)
    s = settings.model_copy(update={"progress_run_api": False})
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

"""A backlog is folded in causal order across the lane's topics (decision 0026).

A fold that starts with a backlog reads the small `pipeline.tasks` partition to its end long
before the large stage partitions; folding in fetch order would fold `task.completed` first
and ignore the stage events that came before it (clients would miss their updates). The lane
holds back what is later than the earliest watermark of a partition still behind, so every
event of a run folded from a backlog publishes its update, exactly as when folded live.

The backlog is written run after run, each event stamped with its own time, so a partition's
timestamps go back at every new run (as with producers whose clocks differ).
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta

import pytest

from ytmaker_dev.scenario import run_events
from ytmaker_progress.fold import Folded, apply
from ytmaker_progress.runners.fold import FoldService
from ytmaker_progress.settings import ProgressSettings
from ytmaker_shared.events import Event, encode
from ytmaker_shared.kafka import EventProducer

from .conftest import read_updates

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(300)]

RUNS = 3000


async def test_a_backlog_publishes_every_update_of_every_run(
    settings: ProgressSettings, publisher: EventProducer
) -> None:
    start = datetime.now(UTC) - timedelta(hours=1)
    runs = {
        f"b-{i}": run_events(f"b-{i}", steps=4, start=start + timedelta(seconds=i))
        for i in range(RUNS)
    }
    events: dict[str, Event] = {e.event_id: e for run in runs.values() for _, e in run}
    sent = [
        await publisher.kafka.send(
            settings.topics.name(topic),
            encode(event),
            key=event.task_id.encode(),
            timestamp_ms=int(event.occurred_at.timestamp() * 1000),
        )
        for run in runs.values()
        for topic, event in run
    ]
    await asyncio.gather(*sent)

    fold = FoldService(settings)
    stopping = asyncio.Event()
    folding = asyncio.create_task(fold.run(stopping))
    try:
        updates = await read_updates(settings, until=len(events), timeout=120)
    finally:
        stopping.set()
        with contextlib.suppress(asyncio.CancelledError):
            await folding

    assert len(updates) == len(events), "some events were folded out of order and ignored"
    by_task: dict[str, list[dict[str, object]]] = {}
    for _, _, update in updates:
        by_task.setdefault(str(update["task_id"]), []).append(update)
    for task, items in by_task.items():
        state: Folded | None = None
        for update in items:
            folded, out = apply(state, events[str(update["event_id"])])
            assert [u.model_dump(mode="json") for u in out] == [update], task
            state = folded

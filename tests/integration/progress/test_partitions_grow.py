"""Every topic grows while the progress service runs (decision 0138).

Before, the fold went on with its lanes of the old count until its consumer's metadata was
refreshed (aiokafka's `metadata_max_age_ms`, 5 minutes) and dead-lettered as `wrong_partition`
every event of a task whose partition had moved among the old ones; the sink never read the
new partitions. Now the service stops within a look (`CHECK_S`), and started again it folds a
new run into its task's partition by the new count, which its sink reads and serves.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewPartitions

from tests.support.internal import internal_headers
from tests.support.wait import wait_until, wait_until_async
from ytmaker_dev.scenario import run_events
from ytmaker_progress.main import ProgressService
from ytmaker_progress.runners.lane import FoldFatal
from ytmaker_progress.settings import ProgressSettings
from ytmaker_shared.events import Event, new_event_id
from ytmaker_shared.kafka import EventProducer, growth
from ytmaker_shared.kafka.connection import aiokafka_connection
from ytmaker_shared.kafka.growth import PartitionsGrew
from ytmaker_shared.topics import Topic, task_partition

from .conftest import publish, read_topic, read_updates, topics_for

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(300)]

BEFORE, AFTER = 2, 3


def _task(where: Callable[[int, int], bool]) -> str:
    """A task id whose partitions, by `BEFORE` and by `AFTER`, satisfy `where`."""
    while not where(task_partition(t := new_event_id(), BEFORE), task_partition(t, AFTER)):
        pass
    return t


def _run(task_id: str) -> list[tuple[Topic, Event]]:
    """A run of now (the read side's cleanup forgets finished tasks of long ago at start)."""
    return run_events(task_id, start=datetime.now(UTC))


@pytest.fixture
async def settings(
    kafka_bootstrap: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[ProgressSettings]:
    monkeypatch.setattr(growth, "CHECK_S", 0.5)
    async for s in topics_for(
        kafka_bootstrap, tmp_path / "progress.db", "grow", topic_partitions=BEFORE
    ):
        yield s


async def _started(
    settings: ProgressSettings, stopping: asyncio.Event
) -> tuple[ProgressService, asyncio.Task[None]]:
    service = ProgressService(settings)
    running = asyncio.create_task(service.run(stopping))
    await wait_until(lambda: service.ready() or running.done(), timeout=60, what="ready")
    if running.done():
        running.result()
    return service, running


async def _completed(service: ProgressService, *task_ids: str) -> None:
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{service.http_port}", headers=internal_headers()
    ) as client:

        async def served() -> bool:
            for task_id in task_ids:
                response = await client.get(f"/internal/v1/tasks/{task_id}")
                if response.status_code != 200 or response.json()["status"] != "completed":
                    return False
            return True

        await wait_until_async(served, timeout=60, what=f"{task_ids} completed")


async def test_the_service_stops_when_its_topics_grow_and_takes_every_new_run_after(
    settings: ProgressSettings,
) -> None:
    before = new_event_id()
    first, running = await _started(settings, asyncio.Event())
    async with EventProducer(settings, "before") as producer:
        await publish(producer, _run(before))
    await _completed(first, before)

    admin = AIOKafkaAdminClient(**aiokafka_connection(settings))
    await admin.start()
    try:
        grown = {name: NewPartitions(total_count=AFTER) for name in settings.topics.all()}
        await admin.create_partitions(grown)
    finally:
        await admin.close()
    with pytest.raises((PartitionsGrew, FoldFatal), match=f"{BEFORE} -> {AFTER}"):
        await asyncio.wait_for(running, timeout=30)

    stopping = asyncio.Event()
    second, running = await _started(settings, stopping)  # what the supervisor starts
    new = _task(lambda old, now: now >= BEFORE)  # in a new partition
    moved = _task(lambda old, now: old != now < BEFORE)  # moved among the old ones
    async with EventProducer(settings, "after") as producer:  # hashes keys by the new count
        for task_id in (new, moved):
            await publish(producer, _run(task_id))
    await _completed(second, before, new, moved)

    updates = await read_updates(settings)
    for task_id in (new, moved):
        partitions = {p for p, _, update in updates if update["task_id"] == task_id}
        assert partitions == {task_partition(task_id, AFTER)}, task_id
    assert await read_topic(settings, Topic.DLQ, timeout=1) == []
    stopping.set()
    await running

"""The read model's sink on the real broker and a real database (SQLite and PostgreSQL): an
update outside its task's partition is not applied, is counted with its reason, and blocks
nothing."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from prometheus_client import REGISTRY

from ytmaker_progress import SERVICE
from ytmaker_progress.readmodel.memory import RecentHistory
from ytmaker_progress.readmodel.store import Store
from ytmaker_progress.runners.sink import Sink
from ytmaker_progress.settings import ProgressSettings
from ytmaker_shared.kafka import EventProducer
from ytmaker_shared.topics import Topic, task_partition

pytestmark = [pytest.mark.kafka]


def _update(task_id: str, progress: float, status: str = "running") -> bytes:
    state = {"task_id": task_id, "project_id": "p", "owner": "alice", "status": status}
    update = {
        "type": "progress",
        "task_id": task_id,
        "event_id": f"e-{progress}",
        "occurred_at": "2026-12-01T10:00:00Z",
        "state": state | {"progress": progress, "stages": {}},
    }
    return json.dumps(update).encode()


def _skipped(topic: str, reason: str) -> float:
    labels = {"service": SERVICE, "topic": topic, "reason": reason}
    return REGISTRY.get_sample_value("ytmaker_records_skipped_total", labels) or 0.0


async def test_an_update_in_another_partition_than_its_tasks_is_not_applied(
    settings: ProgressSettings, publisher: EventProducer, database_url: str
) -> None:
    topic = settings.topics.name(Topic.PROGRESS_UPDATES)
    partitions = settings.topic_partitions
    assert partitions > 1
    home = task_partition("t-victim", partitions)
    wrong = (home + 1) % partitions
    neighbour = next(
        name
        for name in (f"t-{i}" for i in range(10_000))
        if task_partition(name, partitions) == wrong
    )

    async def write(partition: int, task_id: str, value: bytes) -> int:
        sent: Any = await publisher.kafka.send_and_wait(
            topic, value=value, key=task_id.encode(), partition=partition
        )
        return int(sent.offset)

    real = await write(home, "t-victim", _update("t-victim", 10.0))
    await write(wrong, neighbour, _update(neighbour, 1.0))
    # At a higher offset than the victim's real update: by offset it would be the latest.
    hostile = await write(wrong, "t-victim", _update("t-victim", 100.0, "completed"))
    after = await write(wrong, neighbour, _update(neighbour, 2.0))
    assert hostile > real
    skipped_before = _skipped(topic, "wrong_partition")

    store = Store(database_url)
    memory = RecentHistory()
    sink = Sink(settings, store, memory)
    stopping = asyncio.Event()
    running = asyncio.create_task(sink.run(stopping))
    try:
        async with asyncio.timeout(60):
            await sink.caught_up.wait()
    finally:
        stopping.set()
        await running
    try:
        victim = store.task("t-victim")
        assert victim is not None
        assert (victim["status"], victim["progress"], victim["offset"]) == ("running", 10.0, real)
        assert [h["offset"] for h in store.history("t-victim")] == [real]
        assert [i["offset"] for i in memory.items("t-victim")] == [real]
        # the partition went on past it: the neighbour's later update is there
        later = store.task(neighbour)
        assert later is not None and (later["progress"], later["offset"]) == (2.0, after)
        assert store.positions()[(topic, wrong)][0] == after + 1
        assert _skipped(topic, "wrong_partition") == skipped_before + 1
    finally:
        store.close()

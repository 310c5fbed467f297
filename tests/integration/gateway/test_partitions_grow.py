"""`progress.updates` grows under a running gateway (decision 0138).

The hub reads the partitions the topic had when it started and computes a task's partition by
that count: a run whose updates the fold writes to a new partition would never be delivered
live, and one whose partition moved among the old ones would be skipped as `wrong_partition`.
The hub stops instead (PartitionsGrew; the process exits non-zero and its supervisor starts
it again), and the gateway started after it serves the run live and by resume exactly.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewPartitions
from websockets.asyncio.client import ClientConnection, connect

from tests.support.gateway import make_update
from ytmaker_gateway import metrics
from ytmaker_shared.events import new_event_id
from ytmaker_shared.kafka import growth
from ytmaker_shared.kafka.connection import aiokafka_connection
from ytmaker_shared.kafka.growth import PartitionsGrew
from ytmaker_shared.progress import ProgressUpdate, TaskStatus
from ytmaker_shared.topics import Topic, task_partition

from .conftest import Cluster, Replica

pytestmark = pytest.mark.kafka

GROWN = 5  # the cluster fixture makes 3


def _task(where: Any) -> str:
    """A task id whose partitions, by 3 and by `GROWN`, satisfy `where(before, after)`."""
    while not where(task_partition(t := new_event_id(), 3), task_partition(t, GROWN)):
        pass
    return t


async def _grow(cluster: Cluster) -> None:
    """Grow `progress.updates`; from now on the test writes its updates as the fold would
    after the growth: through a producer started after it (the cluster's, started before,
    would still hash keys by 3 partitions)."""
    admin = AIOKafkaAdminClient(**aiokafka_connection(cluster.settings))
    await admin.start()
    try:
        topic = cluster.settings.topics.name(Topic.PROGRESS_UPDATES)
        await admin.create_partitions({topic: NewPartitions(total_count=GROWN)})
    finally:
        await admin.close()
    await cluster.kafka.stop()
    cluster.kafka = AIOKafkaProducer(**aiokafka_connection(cluster.settings), acks="all")
    await cluster.kafka.start()


async def _stopped_by_growth(cluster: Cluster, replica: Replica) -> None:
    """The replica's hub stops on its own with PartitionsGrew; the rest of it is closed, as
    the process would be."""
    with pytest.raises(PartitionsGrew, match=f"3 -> {GROWN}"):
        await asyncio.wait_for(replica.hub_task, timeout=30)
    cluster.replicas.remove(replica)
    await replica.server.stop()
    await replica.gateway.streams.reader.close()
    await replica.gateway.progress.close()


async def _write(cluster: Cluster, update: ProgressUpdate) -> int:
    """Write the update (after `_grow`): in its task's partition by the new count."""
    meta = await cluster.kafka.send_and_wait(
        cluster.settings.topics.name(Topic.PROGRESS_UPDATES),
        key=update.task_id.encode(),
        value=update.model_dump_json().encode(),
    )
    assert meta.partition == task_partition(update.task_id, GROWN)
    cluster.fake.record(meta.offset, update)
    return int(meta.offset)


async def _recv(ws: ClientConnection) -> dict[str, Any]:
    async with asyncio.timeout(10):
        message: dict[str, Any] = json.loads(await ws.recv())
    return message


async def _updates(ws: ClientConnection, task_id: str, until: int) -> list[int]:
    """The offsets of the task's updates the connection receives, up to offset `until`."""
    offsets: list[int] = []
    while not offsets or offsets[-1] < until:
        message = await _recv(ws)
        if message["type"] in {"progress", "status"} and message["task_id"] == task_id:
            offsets.append(message["offset"])
    return offsets


def _wrong_partition() -> float:
    return sum(
        s.value
        for m in metrics.BAD_UPDATES.collect()
        for s in m.samples
        if s.name.endswith("_total") and s.labels.get("reason") == "wrong_partition"
    )


async def test_a_run_in_a_new_partition_is_served_live_and_resumed_exactly_after_the_restart(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(growth, "CHECK_S", 0.5)
    first = await cluster.replica()
    await _grow(cluster)
    await _stopped_by_growth(cluster, first)  # found by its periodic look

    second = await cluster.replica()  # what the supervisor starts
    assert second.gateway.hub.partitions == GROWN
    task_id = _task(lambda before, after: after >= 3)
    url = f"{second.ws}/api/v1/ws?token={cluster.token()}"
    head = [await _write(cluster, make_update(task_id, n=n)) for n in range(3)]
    async with connect(url) as ws:
        await _recv(ws)  # hello
        await ws.send(json.dumps({"action": "subscribe", "task_id": task_id, "since": -1}))
        seen = await _updates(ws, task_id, head[-1])
        live = await _write(cluster, make_update(task_id, n=3))
        seen += await _updates(ws, task_id, live)  # delivered live
    rest = [
        await _write(cluster, make_update(task_id, n=n, status=TaskStatus.COMPLETED))
        for n in range(4, 6)
    ]
    async with connect(url) as ws:  # resumed by offset
        await _recv(ws)
        await ws.send(json.dumps({"action": "subscribe", "task_id": task_id, "since": seen[-1]}))
        seen += await _updates(ws, task_id, rest[-1])
    assert seen == [*head, live, *rest] == await cluster.log_of(task_id)


async def test_an_update_that_looks_misplaced_by_the_old_count_stops_the_hub_unskipped(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The update's partition moved among the old ones: by 3 it looks misplaced. Before the
    periodic look comes (an hour here), the hub looks at once and stops rather than skip it;
    the next gateway replays it."""
    monkeypatch.setattr(growth, "CHECK_S", 3600)
    first = await cluster.replica()
    await _grow(cluster)
    skipped = _wrong_partition()
    task_id = _task(lambda before, after: before != after < 3)
    offset = await _write(cluster, make_update(task_id, status=TaskStatus.COMPLETED))
    await _stopped_by_growth(cluster, first)
    assert _wrong_partition() == skipped

    second = await cluster.replica()
    async with connect(f"{second.ws}/api/v1/ws?token={cluster.token()}") as ws:
        await _recv(ws)
        await ws.send(json.dumps({"action": "subscribe", "task_id": task_id, "since": -1}))
        assert await _updates(ws, task_id, offset) == [offset]

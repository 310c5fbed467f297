"""The gateway's edge on the real broker: records of `progress.updates` that cannot
be decoded are skipped live and in replays, counted, and nothing is written anywhere (the
dead-letter topic stays empty); a resume after far more missed updates than the client's
queue holds gets every one of them, once, in order, from Kafka."""

from __future__ import annotations

import asyncio
import json
import re

import httpx
import pytest

from tests.support.gateway import make_update
from tests.support.topics import read_topic
from tests.support.wait import wait_until
from ytmaker_gateway import metrics
from ytmaker_gateway.fanout.replay import ReplayReader
from ytmaker_shared.events import new_event_id
from ytmaker_shared.progress import TaskStatus
from ytmaker_shared.topics import Topic, task_partition

from .conftest import Cluster
from .test_gateway_kafka import UPDATE_TYPES, _open, _recv

pytestmark = pytest.mark.kafka

HOSTILE: list[bytes | None] = [
    None,
    b"",
    b"\xff\xfe",
    b"[" * 3000 + b"]" * 3000,
    b'{"type": "progress", "task_id": ' + b"7" * 6000 + b"}",
    b'{"type": "progress", "state": {"progress": 1e400}}',
    json.dumps({"message": "x" * 900_000}).encode(),
    b'{"type": "progress"}',
]


async def _skipped(base: str) -> float:
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"{base}/metrics")).text
    pattern = r'ytmaker_records_skipped_total\{[^}]*service="gateway"[^}]*\} ([0-9.e+]+)'
    return sum(float(v) for v in re.findall(pattern, text))


async def _collect(url: str, token: str, task_id: str, since: int, last: int) -> list[int]:
    ws, _ = await _open(url, token)
    await ws.send(json.dumps({"action": "subscribe", "task_id": task_id, "since": since}))
    got: list[int] = []
    while not got or got[-1] != last:
        message = await _recv(ws, timeout=30)
        if message["type"] in UPDATE_TYPES and message["task_id"] == task_id:
            got.append(message["offset"])
    await ws.close()
    return got


async def test_undecodable_updates_are_skipped_counted_and_never_written(
    cluster: Cluster,
) -> None:
    task_id = new_event_id()
    live = await cluster.replica()
    skipped_before = await _skipped(live.server.base)
    ws, _ = await _open(live.ws, cluster.token())
    await cluster.write(make_update(task_id, n=-1, status=TaskStatus.QUEUED))
    await ws.send(json.dumps({"action": "subscribe", "task_id": task_id, "since": -1}))
    topic = cluster.settings.topics.name(Topic.PROGRESS_UPDATES)
    good = [(await cluster.log_of(task_id))[0]]
    for n, value in enumerate(HOSTILE):
        await cluster.kafka.send_and_wait(topic, value, key=task_id.encode())
        status = TaskStatus.COMPLETED if n == len(HOSTILE) - 1 else TaskStatus.RUNNING
        good.append(await cluster.write(make_update(task_id, n=n, status=status)))
    seen: list[int] = []
    while not seen or seen[-1] != good[-1]:
        message = await _recv(ws, timeout=30)
        if message["type"] in UPDATE_TYPES:
            seen.append(message["offset"])
    assert seen == good
    await ws.close()
    assert await _skipped(live.server.base) - skipped_before >= len(HOSTILE)
    # A gateway started afterwards has none of it cached: its replay reads the log.
    later = await cluster.replica(cache_updates_per_task=0)
    assert await _collect(later.ws, cluster.token(), task_id, -1, good[-1]) == good
    assert await read_topic(cluster.settings, Topic.DLQ, timeout=5) == []  # a reader only


async def test_a_resume_after_many_more_updates_than_the_queue_holds(cluster: Cluster) -> None:
    """Once the whole replay went into the 1,000-message queue at once and the client was
    closed with 1013 before anything was sent, on every retry."""
    task_id = new_event_id()
    replica = await cluster.replica(
        client_queue_size=100, replay_page=40, cache_updates_per_task=50
    )
    topic = cluster.settings.topics.name(Topic.PROGRESS_UPDATES)
    partitions = cluster.settings.topic_partitions
    other = next(
        t
        for t in iter(new_event_id, None)
        if task_partition(t, partitions) == task_partition(task_id, partitions)
    )
    pending = []
    for n in range(1500):  # each update of the task followed by one of another task
        update = make_update(task_id, n=n, progress=n / 15)
        pending.append(
            await cluster.kafka.send(topic, update.model_dump_json().encode(), key=task_id.encode())
        )
        noise = make_update(other, n=n, owner="bob")  # in the same partition
        await cluster.kafka.send(topic, noise.model_dump_json().encode(), key=other.encode())
    written = [meta.offset for meta in await asyncio.gather(*pending)]
    cluster.fake.record(written[-1], make_update(task_id, n=1499, progress=99.9))
    partition = task_partition(task_id, partitions)
    await wait_until(  # the whole run is in the past: a queue of 100 takes no live burst
        lambda: replica.gateway.hub.positions[partition] > written[-1], timeout=30
    )
    token = cluster.token()
    whole, rest = await asyncio.gather(
        _collect(replica.ws, token, task_id, -1, written[-1]),
        _collect(replica.ws, token, task_id, written[299], written[-1]),
    )
    assert whole == written
    assert rest == written[300:]


async def test_a_replay_reader_moved_to_another_partition_reads_from_the_asked_offset(
    cluster: Cluster,
) -> None:
    """A pooled reader keeps its position for the next page of the same partition; one
    handed to another partition must seek, whatever offset it stood at (found by the churn
    test: two partitions at similar offsets, a page of the second read from its end)."""
    partitions = cluster.settings.topic_partitions
    by_partition: dict[int, str] = {}
    while len(by_partition) < 2:
        task_id = new_event_id()
        by_partition.setdefault(task_partition(task_id, partitions), task_id)
    (pa, task_a), (pb, task_b) = sorted(by_partition.items())[:2]
    for n in range(40):
        await cluster.write(make_update(task_b, n=n))
        if n < 20:
            await cluster.write(make_update(task_a, n=n))
    reader = ReplayReader(cluster.settings.model_copy(update={"replay_readers": 1}))
    try:
        a = await reader.page(task_a, pa, 0, 20, None, 100)
        assert [d.offset for d in a.items] == list(range(20))
        b = await reader.page(task_b, pb, 20, 40, None, 100)  # the same reader, "at 20"
        assert [d.offset for d in b.items] == list(range(20, 40))
    finally:
        await reader.close()


async def test_live_and_replay_both_skip_a_record_in_a_tasks_partition_keyed_by_another(
    cluster: Cluster,
) -> None:
    """A record in task U's partition holding an update of U, keyed by task T (a hostile
    writer): a replay of U selects U's records by key and never sent it, but the fan-out did
    not see keys and sent it live to U's subscribers, who were then shown what a reconnect
    would not show them again."""
    task_id, other = new_event_id(), new_event_id()
    topic = cluster.settings.topics.name(Topic.PROGRESS_UPDATES)
    partition = task_partition(other, cluster.settings.topic_partitions)
    live = await cluster.replica()
    skipped_before = await _skipped(live.server.base)
    first = await cluster.write(make_update(other, n=0))
    ws, _ = await _open(live.ws, cluster.token())
    await ws.send(json.dumps({"action": "subscribe", "task_id": other, "since": -1}))
    forged = make_update(other, n=5, progress=100, status=TaskStatus.COMPLETED)
    sent = await cluster.kafka.send_and_wait(
        topic, forged.model_dump_json().encode(), key=task_id.encode(), partition=partition
    )
    last = await cluster.write(make_update(other, n=1))
    assert first < sent.offset < last
    seen: list[int] = []
    while not seen or seen[-1] != last:
        message = await _recv(ws, timeout=30)
        if message["type"] in UPDATE_TYPES:
            seen.append(message["offset"])
    await ws.close()
    assert seen == [first, last]
    assert await _skipped(live.server.base) == skipped_before + 1
    later = await cluster.replica(cache_updates_per_task=0)  # its replay reads the log
    assert await _collect(later.ws, cluster.token(), other, -1, last) == [first, last]


def _bad_replays(reason: str) -> float:
    return sum(
        s.value
        for m in metrics.BAD_UPDATES.collect()
        for s in m.samples
        if s.name.endswith("_total") and s.labels == {"reader": "replay", "reason": reason}
    )


async def test_a_replay_skips_a_record_keyed_by_the_task_that_holds_another_tasks_update(
    cluster: Cluster,
) -> None:
    """A replay selects a task's records by key: one keyed T whose update is U's (a hostile
    writer) was replayed to T's subscribers as if it were T's."""
    task_id, other = new_event_id(), new_event_id()
    topic = cluster.settings.topics.name(Topic.PROGRESS_UPDATES)
    partition = task_partition(task_id, cluster.settings.topic_partitions)
    first = await cluster.write(make_update(task_id, n=0))
    foreign = make_update(other, n=0).model_dump_json().encode()
    sent = await cluster.kafka.send_and_wait(topic, foreign, key=task_id.encode())
    last = await cluster.write(make_update(task_id, n=1))
    assert sent.partition == partition and first < sent.offset < last
    before = _bad_replays("key_mismatch")
    reader = ReplayReader(cluster.settings)
    try:
        page = await reader.page(task_id, partition, first, last + 1, None, 100)
    finally:
        await reader.close()
    assert [(d.offset, d.task_id) for d in page.items] == [(first, task_id), (last, task_id)]
    assert page.position == last + 1
    assert _bad_replays("key_mismatch") == before + 1

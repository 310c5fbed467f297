"""Replay of any length (docs/decisions/0040-paged-replay.md), without a broker:
a replay far longer than the client's queue arrives whole, once, in order, paced by the
client's writer and a page at a time; a finished task is read only up to its last update;
the hub's cache takes over from the log where it holds the rest; a client that reads nothing
is given up on; unreadable records are skipped, counted and logged once."""

from __future__ import annotations

import asyncio
import json
import logging
from collections import OrderedDict
from typing import Any

import pytest

from tests.support.gateway import FakeLog, make_state, make_update, stable_id
from tests.support.wait import wait_until
from ytmaker_gateway import metrics
from ytmaker_gateway.fanout import delivery
from ytmaker_gateway.fanout.client_queue import ClientQueue
from ytmaker_gateway.fanout.hub import Hub
from ytmaker_gateway.fanout.streams import Streams
from ytmaker_gateway.rules.position import StreamPosition
from ytmaker_gateway.settings import GatewaySettings
from ytmaker_shared.metrics import RECORDS_SKIPPED
from ytmaker_shared.progress import TaskStatus

T = stable_id("long-task")
NOISE = [stable_id(f"noise-{i}") for i in range(20)]


def _hub(**settings: Any) -> Hub:
    return Hub(GatewaySettings(**settings))


def _write(log: FakeLog, task_id: str, n: int, *, noise: int = 1) -> list[int]:
    """`n` updates of the task, each followed by `noise` updates of other tasks in its
    partition; the task's offsets."""
    offsets = []
    same = [t for t in NOISE if log.hub.partition_of(t) == log.hub.partition_of(task_id)]
    for i in range(n):
        offsets.append(log.append(make_update(task_id, n=i, progress=min(100, i / 100))))
        for j in range(noise):
            log.append(make_update(same[(i + j) % len(same)], n=i, owner="bob"))
    return offsets


class Client:
    """An queue whose writer really runs, at a chosen pace, and what it wrote."""

    def __init__(self, maxsize: int, *, pause_every: int = 0) -> None:
        self.texts: list[str] = []
        self.most_queued = 0
        self.pause_every = pause_every
        self.queue = ClientQueue(self._send, maxsize=maxsize, batch=16)
        self.writer = asyncio.create_task(self.queue.run())

    async def _send(self, text: str) -> None:
        self.most_queued = max(self.most_queued, len(self.queue))
        self.texts.append(text)
        if self.pause_every and len(self.texts) % self.pause_every == 0:
            await asyncio.sleep(0.001)  # a client that reads in bursts

    def offsets(self, task_id: str) -> list[int]:
        messages = [json.loads(t) for t in self.texts]
        return [
            m["offset"]
            for m in messages
            if m["type"] in ("progress", "status", "error") and m["task_id"] == task_id
        ]

    async def stop(self) -> None:
        self.queue.close()
        await self.writer


async def test_a_replay_many_times_longer_than_the_queue_arrives_whole_and_paced() -> None:
    hub = _hub(cache_updates_per_task=0)  # every update from the log
    log = FakeLog(hub, partitions=2)
    written = _write(log, T, 3000)
    client = Client(maxsize=100, pause_every=50)
    streams = Streams(hub, log, queue_limit=100, page_size=40)
    await streams.subscribe(T, client.queue, StreamPosition(-1), state=None)
    live = log.append(make_update(T, n=3000))
    await wait_until(lambda: client.offsets(T)[-1:] == [live], timeout=10)
    assert client.offsets(T) == [*written, live]
    assert not client.queue.overflowed
    # Paced: the queue never held more than half of itself.
    assert client.most_queued <= 50
    assert log.reads >= 3000 // 80  # pages, not one read of everything
    await client.stop()


async def test_since_minus_one_of_a_long_run_is_the_whole_run() -> None:
    hub = _hub(cache_updates_per_task=100)
    log = FakeLog(hub, partitions=1)
    written = _write(log, T, 1500, noise=0)
    client = Client(maxsize=1000)
    await Streams(hub, log, 1000).subscribe(T, client.queue, StreamPosition(-1), state=None)
    await wait_until(lambda: len(client.offsets(T)) == 1500, timeout=10)
    assert client.offsets(T) == written
    await client.stop()


async def test_a_finished_task_is_read_up_to_its_last_update_not_to_the_partition_end() -> None:
    hub = _hub(cache_updates_per_task=0)
    log = FakeLog(hub, partitions=1)
    written = _write(log, T, 200)
    _write(log, NOISE[0], 5000, noise=0)  # the partition goes on long after the task ended
    state = make_state(T, status=TaskStatus.COMPLETED, offset=written[-1]).model_dump(mode="json")
    client = Client(maxsize=1000)
    streams = Streams(hub, log, 1000, page_size=50)
    await streams.subscribe(T, client.queue, StreamPosition(written[9]), state=state)
    await wait_until(lambda: len(client.offsets(T)) == 190, timeout=10)
    assert client.offsets(T) == written[10:]
    assert log.scanned <= written[-1] - written[9]  # not one record past its last update
    await client.stop()


async def test_the_log_is_read_until_the_cache_holds_the_rest() -> None:
    hub = _hub(cache_updates_per_task=300)
    log = FakeLog(hub, partitions=1)
    written = _write(log, T, 1000)
    client = Client(maxsize=1000)
    await Streams(hub, log, 1000).subscribe(T, client.queue, StreamPosition(written[0]), state=None)
    await wait_until(lambda: len(client.offsets(T)) == 999, timeout=10)
    assert client.offsets(T) == written[1:]
    # The log was read up to where the cache's 300 updates of the task begin.
    assert written[0] + log.scanned <= written[-300] + 1
    await client.stop()


async def test_a_client_that_reads_nothing_is_given_up_during_the_replay() -> None:
    hub = _hub(cache_updates_per_task=0)
    log = FakeLog(hub, partitions=1)
    _write(log, T, 500, noise=0)
    stuck = asyncio.Event()

    async def never(_: str) -> None:
        await stuck.wait()

    queue = ClientQueue(never, maxsize=100)
    writer = asyncio.create_task(queue.run())
    streams = Streams(hub, log, 100, page_size=20, stall_s=0.2)
    sub = await streams.subscribe(T, queue, StreamPosition(-1), state=None)
    assert queue.overflowed and len(queue) <= 50  # given up, not grown: its socket gets 1013
    assert sub.last_offset < 499
    writer.cancel()


async def test_an_unsubscribe_during_a_replay_stops_it() -> None:
    hub = _hub(cache_updates_per_task=0)
    log = FakeLog(hub, partitions=1)
    _write(log, T, 2000, noise=0)
    client = Client(maxsize=100, pause_every=10)
    streams = Streams(hub, log, 100, page_size=20)
    attached: list[Any] = []
    subscribing = asyncio.create_task(
        streams.subscribe(T, client.queue, StreamPosition(-1), state=None, attach=attached.append)
    )
    await wait_until(lambda: len(client.offsets(T)) >= 100, timeout=10)
    attached[0].cancel()
    hub.unregister(attached[0])
    at_cancel = len(client.offsets(T))
    await subscribing
    await wait_until(lambda: len(client.queue) == 0, timeout=5)
    # What was queued still goes out; nothing more is read or queued.
    assert len(client.offsets(T)) <= at_cancel + 50 + 20
    await client.stop()


def _bad_count(reader: str) -> float:
    return sum(
        s.value
        for m in metrics.BAD_UPDATES.collect()
        for s in m.samples
        if s.name.endswith("_total") and s.labels["reader"] == reader
    )


def _skipped() -> float:
    return sum(
        s.value
        for m in RECORDS_SKIPPED.collect()
        for s in m.samples
        if s.name.endswith("_total") and s.labels["service"] == "gateway"
    )


BAD_RECORDS = [
    None,  # a tombstone
    b"",
    b"{",
    b"\xff\xfe\x00",
    b"[" * 5000 + b"]" * 5000,
    b'{"type": "progress", "task_id": ' + b"9" * 5000 + b"}",
    b'{"type": "progress", "progress": 1e400}',
    b'{"unknown": "fields only"}',
    json.dumps({"x": "y" * 900_000}).encode(),
]


async def test_unreadable_records_are_skipped_counted_and_logged_once(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The process remembers what it logged; earlier tests' fake logs used the same offsets.
    monkeypatch.setattr(delivery.BAD_RECORDS, "_logged", OrderedDict())
    hub = _hub(cache_updates_per_task=0)
    log = FakeLog(hub, partitions=1)
    live_before, replay_before = _bad_count("live"), _bad_count("replay")
    skipped_before = _skipped()
    good = []
    with caplog.at_level(logging.WARNING, logger="ytmaker_gateway.fanout.delivery"):
        for n, value in enumerate(BAD_RECORDS):
            good.append(log.append(make_update(T, n=n)))
            log.append_raw(T, value)  # the hub reads it live
        for _ in range(2):  # two replays read every bad record again
            client = Client(maxsize=1000)
            await Streams(hub, log, 1000).subscribe(T, client.queue, StreamPosition(-1), state=None)
            await wait_until(lambda c=client: len(c.offsets(T)) == len(good), timeout=5)
            assert client.offsets(T) == good
            await client.stop()
    assert _bad_count("live") - live_before == len(BAD_RECORDS)
    assert _skipped() - skipped_before == len(BAD_RECORDS)  # the fan-out's, once per record
    assert _bad_count("replay") - replay_before == 2 * len(BAD_RECORDS)
    logged = [r for r in caplog.records if r.getMessage() == "unreadable update skipped"]
    assert len(logged) == len(BAD_RECORDS)  # once each, however often read


async def test_more_live_updates_during_a_replay_than_the_buffer_holds_are_read_on() -> None:
    """A busy task, or a hub still catching up: the live buffer overflows during the replay.
    Those updates are in the log: the replay reads on to the hub's new position, and the
    client gets everything, once, in order, instead of being given up (1013)."""
    hub = _hub(cache_updates_per_task=0)
    log = FakeLog(hub, partitions=1)
    written = _write(log, T, 300, noise=0)
    real_page = log.page
    live: list[int] = []

    async def page_while_the_task_goes_on(*args: Any) -> Any:
        if len(live) < 150:  # more than the buffer (10) holds, during each of the first pages
            for _ in range(15):
                live.append(log.append(make_update(T, n=1000 + len(live))))
        await asyncio.sleep(0)
        return await real_page(*args)

    log.page = page_while_the_task_goes_on  # type: ignore[method-assign]
    client = Client(maxsize=10_000)
    streams = Streams(hub, log, queue_limit=10, page_size=50)
    await streams.subscribe(T, client.queue, StreamPosition(-1), state=None)
    await wait_until(lambda: len(client.offsets(T)) == len(written) + len(live), timeout=10)
    assert client.offsets(T) == written + live
    assert not client.queue.overflowed
    await client.stop()

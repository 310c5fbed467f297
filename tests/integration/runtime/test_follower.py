"""The librdkafka follower (`LogFollower`, decision 0110) against the real broker: it starts where
it is told, hands over every record once and in order, in batches its caller bounds, and stops
at once."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaProducer

from tests.support.kafka import unique_name
from tests.support.wait import wait_until_async
from ytmaker_shared.kafka import delete_topics, ensure_topics
from ytmaker_shared.kafka import follower as follower_module
from ytmaker_shared.kafka.follower import Followed, LogFollower
from ytmaker_shared.kafka.reader import TopicMissing
from ytmaker_shared.settings import ServiceSettings
from ytmaker_shared.topics import Topic

pytestmark = pytest.mark.kafka

PARTITIONS = 3


@pytest.fixture
async def settings(kafka_bootstrap: str) -> AsyncIterator[ServiceSettings]:
    s = ServiceSettings(
        kafka_bootstrap_servers=kafka_bootstrap,
        topic_prefix=unique_name("follow") + ".",
        topic_partitions=PARTITIONS,
    )
    await ensure_topics(s)
    yield s
    await delete_topics(s)


@pytest.fixture
async def write(settings: ServiceSettings) -> AsyncIterator[_Writer]:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await producer.start()
    yield _Writer(producer, settings.topics.name(Topic.PROGRESS_UPDATES))
    await producer.stop()


class _Writer:
    def __init__(self, producer: AIOKafkaProducer, topic: str) -> None:
        self.producer, self.topic = producer, topic

    async def __call__(self, values: list[bytes | None]) -> None:
        """Each value to partition `index % PARTITIONS`, in order."""
        for index, value in enumerate(values):
            await self.producer.send(self.topic, value, key=b"k", partition=index % PARTITIONS)
        await self.producer.flush()


async def _take(
    follower: LogFollower, stopping: asyncio.Event, count: int, *, timeout_s: float = 30.0
) -> list[list[Followed]]:
    """Batches until `count` records came, within `timeout_s`."""
    batches: list[list[Followed]] = []

    async def enough() -> bool:
        batches.append(await follower.poll(stopping, timeout_s=0.5))
        return sum(map(len, batches)) >= count

    await wait_until_async(enough, timeout=timeout_s, interval=0)
    return [batch for batch in batches if batch]


def _by_partition(batches: list[list[Followed]]) -> dict[int, list[Followed]]:
    found: dict[int, list[Followed]] = defaultdict(list)
    for batch in batches:
        for record in batch:
            found[record.partition].append(record)
    return found


async def test_follows_from_the_ends_every_record_once_in_order(
    settings: ServiceSettings, write: _Writer
) -> None:
    await write([b"before-%d" % i for i in range(30)])
    follower = LogFollower(settings, name="test-follow", read_uncommitted=True, max_records=7)
    stopping = asyncio.Event()
    try:
        ends = await follower.start(settings.topics.name(Topic.PROGRESS_UPDATES))
        assert ends == dict.fromkeys(range(PARTITIONS), 10)
        follower.follow(ends)
        await write([b"after-%d" % i for i in range(60)] + [None, None, None])
        batches = await _take(follower, stopping, 63)
    finally:
        stopping.set()
        await follower.stop()

    assert max(map(len, batches)) <= 7  # the caller bounds a batch
    for partition, records in _by_partition(batches).items():
        assert [r.offset for r in records] == list(range(10, 10 + 21))  # no gap, no repeat
        values = [r.value for r in records]
        assert values == [b"after-%d" % i for i in range(partition, 60, PARTITIONS)] + [None]


async def test_follows_from_the_offsets_it_is_given(
    settings: ServiceSettings, write: _Writer
) -> None:
    await write([b"%d" % i for i in range(9)])
    follower = LogFollower(settings, name="test-follow")
    stopping = asyncio.Event()
    try:
        await follower.start(settings.topics.name(Topic.PROGRESS_UPDATES))
        follower.follow({0: 0, 1: 2, 2: 3})
        batches = await _take(follower, stopping, 3 + 1 + 0)
    finally:
        stopping.set()
        await follower.stop()

    found = {p: [r.offset for r in records] for p, records in _by_partition(batches).items()}
    assert found == {0: [0, 1, 2], 1: [2]}


async def test_a_poll_ends_when_the_caller_stops(settings: ServiceSettings) -> None:
    follower = LogFollower(settings, name="test-follow")
    stopping = asyncio.Event()
    try:
        follower.follow(await follower.start(settings.topics.name(Topic.PROGRESS_UPDATES)))
        poll = asyncio.create_task(follower.poll(stopping, timeout_s=60))
        await asyncio.sleep(0)  # the poll waits
        stopping.set()
        assert await asyncio.wait_for(poll, 2) == []
    finally:
        await asyncio.wait_for(follower.stop(), 5)


async def test_a_topic_that_does_not_come_is_a_clear_error(settings: ServiceSettings) -> None:
    follower = LogFollower(settings, name="test-follow")
    try:
        with pytest.raises(TopicMissing, match="does not exist"):
            await follower.start(unique_name("absent"), timeout_s=1)
    finally:
        await follower.stop()


async def test_a_lone_record_is_handed_over_without_waiting_for_a_batch(
    settings: ServiceSettings, write: _Writer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """librdkafka's `consume(n, timeout)` waits for n records or the timeout: a follower that
    used it would hold a lone update for the whole wait (here far longer than the poll's)."""
    monkeypatch.setattr(follower_module, "WAIT_S", 5.0)
    follower = LogFollower(settings, name="test-follow", read_uncommitted=True, max_records=1000)
    stopping = asyncio.Event()
    try:
        follower.follow(await follower.start(settings.topics.name(Topic.PROGRESS_UPDATES)))
        await write([b"alone"])
        got = await follower.poll(stopping, timeout_s=2.5)
        assert [r.value for r in got] == [b"alone"]
    finally:
        stopping.set()
        await follower.stop()


async def test_an_error_in_the_hand_over_is_logged_and_the_follower_goes_on(
    settings: ServiceSettings, write: _Writer, caplog: pytest.LogCaptureFixture
) -> None:
    follower = LogFollower(settings, name="test-follow", read_uncommitted=True)
    take, failures = follower._take, [RuntimeError("once")]

    def flaky() -> bool:
        if failures:
            raise failures.pop()
        return take()

    follower._take = flaky  # type: ignore[method-assign]
    stopping = asyncio.Event()
    try:
        follower.follow(await follower.start(settings.topics.name(Topic.PROGRESS_UPDATES)))
        await write([b"%d" % i for i in range(6)])
        batches = await _take(follower, stopping, 6)
    finally:
        stopping.set()
        await follower.stop()

    assert sorted(r.value for batch in batches for r in batch) == [b"%d" % i for i in range(6)]
    assert "follower hand-over failed" in caplog.text

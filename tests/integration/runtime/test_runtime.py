"""The shared Kafka runtime against the real broker (issue 2): produce and consume, dead
letters with their coordinates, retries, at-least-once after a kill, a clean stop."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from tests.support.kafka import unique_name
from tests.support.wait import wait_until
from ytmaker_shared.events import (
    Event,
    StageProgressed,
    StageProgressPayload,
    TaskRequested,
    TaskRequestedPayload,
    encode,
)
from ytmaker_shared.kafka import (
    BrokerUnavailable,
    ConsumerLoop,
    DeadLetter,
    EventProducer,
    Retry,
    delete_topics,
    ensure_topics,
)
from ytmaker_shared.kafka.consumer import Record
from ytmaker_shared.kafka.reader import LogReader
from ytmaker_shared.settings import ServiceSettings
from ytmaker_shared.stages import Stage
from ytmaker_shared.topics import Topic

pytestmark = pytest.mark.kafka


def requested(task_id: str, title: str = "A title") -> TaskRequested:
    return TaskRequested(
        task_id=task_id,
        project_id="p-" + task_id,
        owner="alice",
        producer="test/1",
        correlation_id="c-" + task_id,
        payload=TaskRequestedPayload(title=title, content="Some content."),
    )


@pytest.fixture
async def settings(kafka_bootstrap: str) -> AsyncIterator[ServiceSettings]:
    s = ServiceSettings(
        kafka_bootstrap_servers=kafka_bootstrap,
        topic_prefix=unique_name("rt") + ".",
        topic_partitions=3,
        producer_delivery_timeout_s=20,
    )
    await ensure_topics(s)
    yield s
    await delete_topics(s)


@pytest.fixture
async def producer(settings: ServiceSettings) -> AsyncIterator[EventProducer]:
    async with EventProducer(settings, "test") as p:
        yield p


Handler = Callable[[Event, Record], Awaitable[None]]


@pytest.fixture
async def run_loop(
    settings: ServiceSettings, producer: EventProducer
) -> AsyncIterator[Callable[[Handler], ConsumerLoop]]:
    running: list[tuple[ConsumerLoop, asyncio.Task[None]]] = []

    def start(handler: Handler) -> ConsumerLoop:
        loop = ConsumerLoop(
            settings,
            service="test",
            group_id=unique_name("g"),
            topics=[Topic.TASKS, Topic.SCRIPT],
            handler=handler,
            producer=producer,
        )
        running.append((loop, asyncio.create_task(loop.run())))
        return loop

    yield start
    for loop, task in running:
        loop.stop()
        await asyncio.wait_for(task, 30)


async def read_all(settings: ServiceSettings, topic: Topic, count: int) -> list[Any]:
    consumer = AIOKafkaConsumer(
        settings.topics.name(topic),
        bootstrap_servers=settings.kafka_bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    records: list[Any] = []
    try:
        async with asyncio.timeout(30):
            while len(records) < count:
                for batch in (await consumer.getmany(timeout_ms=500)).values():
                    records.extend(batch)
    finally:
        await consumer.stop()
    return records


async def test_events_go_through_keyed_and_in_order(
    settings: ServiceSettings, producer: EventProducer, run_loop: Any
) -> None:
    sent: list[Event] = []
    for i in range(30):
        task_id = f"task-{i % 3}"
        event: Event = StageProgressed(
            task_id=task_id,
            project_id="p",
            owner="alice",
            producer="test/1",
            correlation_id="c",
            stage=Stage.IMAGES,
            payload=StageProgressPayload(progress=i, message=f"step {i}"),
        )
        await producer.send(Topic.SCRIPT, event)
        sent.append(event)

    received: list[Event] = []

    async def handle(event: Event, record: Record) -> None:
        assert record.key == event.task_id.encode()
        received.append(event)

    loop = run_loop(handle)
    await wait_until(lambda: len(received) >= len(sent), timeout=30)
    assert sorted(e.event_id for e in received) == sorted(e.event_id for e in sent)
    for task_id in ("task-0", "task-1", "task-2"):
        mine = [e for e in received if e.task_id == task_id]
        assert mine == [e for e in sent if e.task_id == task_id]  # one partition, in order
    await wait_until(lambda: loop.ready, timeout=30)


async def test_bad_records_go_to_the_dlq_and_the_next_good_one_is_handled(
    settings: ServiceSettings, producer: EventProducer, run_loop: Any
) -> None:
    tasks_topic = settings.topics.name(Topic.TASKS)
    malformed = b'{"type": "task.requested", oops'
    future = json.loads(encode(requested("t-future")))
    future["schema_version"] = 99
    future_bytes = json.dumps(future).encode()
    invalid = json.dumps({**future, "schema_version": 2, "owner": ""}).encode()
    good = requested("t-good")
    for value in (malformed, future_bytes, invalid):
        await producer.send_raw(tasks_topic, key=b"same-key", value=value)
    meta = await producer.send_raw(tasks_topic, key=b"same-key", value=encode(good))

    handled: list[Event] = []

    async def handle(event: Event, record: Record) -> None:
        handled.append(event)

    run_loop(handle)
    await wait_until(lambda: handled, timeout=30)
    assert handled == [good]

    letters = [DeadLetter.from_record(r) for r in await read_all(settings, Topic.DLQ, 3)]
    assert [(d.reason, d.value) for d in letters] == [
        ("invalid_json", malformed),
        ("unknown_schema_version", future_bytes),
        ("invalid_event", invalid),
    ]
    for letter, offset in zip(letters, range(meta.offset - 3, meta.offset), strict=True):
        assert (letter.topic, letter.partition, letter.offset) == (
            tasks_topic,
            meta.partition,
            offset,
        )
        assert letter.key == b"same-key"
        assert letter.detail
    assert "owner" in letters[2].detail


async def test_a_failing_handler_dead_letters_and_a_transient_one_retries(
    settings: ServiceSettings, producer: EventProducer, run_loop: Any
) -> None:
    poison, flaky, after = requested("t-1", "poison"), requested("t-1", "flaky"), requested("t-1")
    # Transient failures that are not `Retry`: a storage hiccup, a broker away, a timeout.
    disk, broker, slow = (
        requested("t-1", "disk"),
        requested("t-1", "broker"),
        requested("t-1", "slow"),
    )
    transient: dict[str, Exception] = {
        "disk": OSError(5, "Input/output error"),
        "broker": BrokerUnavailable("no broker after 30s"),
        "slow": TimeoutError("the artifact store did not answer"),
    }
    for event in (poison, flaky, disk, broker, slow, after):
        await producer.send(Topic.TASKS, event)
    attempts: dict[str, int] = {}
    done: list[str] = []

    async def handle(event: Event, record: Record) -> None:
        assert isinstance(event, TaskRequested)
        attempts[event.event_id] = attempts.get(event.event_id, 0) + 1
        title = event.payload.title
        if title == "poison":
            raise ValueError("this handler cannot cope")
        if title == "flaky" and attempts[event.event_id] < 3:
            raise Retry("the image API said 503", delay_s=0.05)
        if title in transient and attempts[event.event_id] < 3:
            raise transient[title]
        done.append(event.event_id)

    run_loop(handle)
    await wait_until(lambda: len(done) == 5, timeout=60)
    assert done == [e.event_id for e in (flaky, disk, broker, slow, after)]  # in order
    assert [attempts[e.event_id] for e in (flaky, disk, broker, slow)] == [3, 3, 3, 3]
    [letter] = [DeadLetter.from_record(r) for r in await read_all(settings, Topic.DLQ, 1)]
    assert letter.reason == "handler_error"
    assert "this handler cannot cope" in letter.detail
    assert letter.value == encode(poison)
    assert await count_records(settings, Topic.DLQ) == 1  # nothing transient was dead-lettered


async def count_records(settings: ServiceSettings, topic: Topic) -> int:
    """How many records `topic` holds (the sum of its partitions' end offsets)."""
    name = settings.topics.name(topic)
    consumer = AIOKafkaConsumer(name, bootstrap_servers=settings.kafka_bootstrap_servers)
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        tps = [TopicPartition(name, p) for p in consumer.partitions_for_topic(name) or ()]
        assert tps, f"{name} has no partitions"
        return sum((await consumer.end_offsets(tps)).values())
    finally:
        await consumer.stop()


def start_consumer(
    settings: ServiceSettings, db: Path, group: str, kill_on: str = ""
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "YTMAKER_TOPIC_PREFIX": settings.topic_prefix,
        "YTMAKER_TEST_KILL_ON": kill_on,
    }
    script = Path(__file__).with_name("dedup_consumer.py")
    return subprocess.Popen([sys.executable, str(script), str(db), group], env=env)


def counts(db: Path, event_id: str) -> tuple[int, int]:
    with sqlite3.connect(db) as conn:
        delivered = conn.execute("SELECT count(*) FROM deliveries WHERE event_id = ?", (event_id,))
        applied = conn.execute("SELECT count(*) FROM applied WHERE event_id = ?", (event_id,))
        return delivered.fetchone()[0], applied.fetchone()[0]


async def test_a_consumer_killed_before_commit_gets_the_event_again_and_applies_it_once(
    settings: ServiceSettings, producer: EventProducer, tmp_path: Path
) -> None:
    db, group = tmp_path / "effects.db", unique_name("dedup")
    first, second = requested("t-kill"), requested("t-kill", "second")
    await producer.send(Topic.TASKS, first)

    doomed = start_consumer(settings, db, group, kill_on=first.event_id)
    assert await asyncio.to_thread(doomed.wait, 60) == -signal.SIGKILL
    assert counts(db, first.event_id) == (1, 1)

    survivor = start_consumer(settings, db, group)
    try:
        await wait_until(lambda: counts(db, first.event_id) == (2, 1), timeout=60)
        await producer.send(Topic.TASKS, second)
        await wait_until(lambda: counts(db, second.event_id) == (1, 1), timeout=60)
    finally:
        survivor.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(survivor.wait, 30) == 0  # a clean stop

    # The clean stop committed: a new member starts after `second`, redelivering nothing.
    third = requested("t-kill", "third")
    await producer.send(Topic.TASKS, third)
    last = start_consumer(settings, db, group)
    try:
        await wait_until(lambda: counts(db, third.event_id) == (1, 1), timeout=60)
        assert counts(db, first.event_id) == (2, 1)
        assert counts(db, second.event_id) == (1, 1)
    finally:
        last.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(last.wait, 30) == 0


async def test_a_second_member_takes_over_partitions_and_nothing_is_lost(
    settings: ServiceSettings, producer: EventProducer
) -> None:
    group = unique_name("shared")
    handled: dict[str, list[str]] = {"a": [], "b": []}

    def member(name: str) -> ConsumerLoop:
        async def handle(event: Event, record: Record) -> None:
            handled[name].append(event.event_id)

        return ConsumerLoop(
            settings,
            service=f"member-{name}",
            group_id=group,
            topics=[Topic.TASKS],
            handler=handle,
            producer=producer,
        )

    first_half = [requested(f"t-{i}") for i in range(30)]
    for event in first_half:
        await producer.send(Topic.TASKS, event)
    a = member("a")
    a_task = asyncio.create_task(a.run())
    b: ConsumerLoop | None = None
    try:
        await wait_until(lambda: len(handled["a"]) == 30, timeout=60)
        b = member("b")
        b_task = asyncio.create_task(b.run())
        await wait_until(lambda: b.ready and b.kafka.assignment(), timeout=60)
        second_half = [requested(f"t-{i}") for i in range(30)]
        for event in second_half:
            await producer.send(Topic.TASKS, event)
        wanted = {e.event_id for e in first_half + second_half}
        await wait_until(lambda: set(handled["a"]) | set(handled["b"]) == wanted, timeout=60)
        assert handled["b"], "the second member got no partition"
        assert not set(handled["b"]) & {e.event_id for e in first_half}, "committed work redone"
    finally:
        a.stop()
        await asyncio.wait_for(a_task, 30)
        if b is not None:
            b.stop()
            await asyncio.wait_for(b_task, 30)


async def test_sends_that_find_their_batch_full_wait_for_it_once_each(
    settings: ServiceSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Many tasks reporting at once through one producer with small batches: every event
    arrives, and a send that finds its partition's batch full waits for it once, not once
    per batch sent meanwhile (aiokafka wakes every waiting send at each one: ~n² waits)."""
    from aiokafka.producer.message_accumulator import MessageBatch

    waits = 0
    wait_drain = MessageBatch.wait_drain

    async def counted(self: MessageBatch, timeout: float | None = None) -> Any:
        nonlocal waits
        waits += 1
        return await wait_drain(self, timeout)

    monkeypatch.setattr(MessageBatch, "wait_drain", counted)
    sends = 300
    async with EventProducer(settings, "test", max_batch_size=2048) as producer:
        await asyncio.gather(
            *(producer.send(Topic.TASKS, requested(f"t{i}")) for i in range(sends))
        )
    assert len(await read_all(settings, Topic.TASKS, sends)) == sends
    assert 0 < waits <= sends


async def test_a_reader_opened_and_closed_at_once_closes_cleanly(settings: ServiceSettings) -> None:
    """aiokafka's consumer raised CancelledError from a stop() right after its start()
    (aiokafka#647): `ytmaker dlq requeue` with no letter to check failed so."""
    for _ in range(3):
        async with LogReader(settings, name="open-and-close"):
            pass

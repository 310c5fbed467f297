"""Progress service figures on the real broker: fold throughput, added latency, rebuild time.

    KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:19092 python bench/progress_fold.py [--tasks 3000]

Prints events/s through the fold (backlog of `--tasks` runs, ~33 events each), the added
latency from a pipeline topic to `progress.updates` (p50/p99, at a light steady rate) and the
time to rebuild a SQLite read model from the resulting updates. Uses its own topic prefix.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaConsumer
from progress_rebuild import delete_topics

from ytmaker_progress import metrics
from ytmaker_progress.foldloop import FoldService
from ytmaker_progress.rebuild import rebuild
from ytmaker_progress.scenario import run_events
from ytmaker_progress.settings import ProgressSettings
from ytmaker_shared.events import encode
from ytmaker_shared.kafka import EventProducer, ensure_topics
from ytmaker_shared.topics import Topic


async def produce_backlog(producer: EventProducer, tasks: int, prefix: str = "b") -> int:
    """`tasks` runs of ~38 events each. Each record's timestamp is its event's time (runs
    started an hour ago, a second between events), as if the stages had written them live:
    the fold merges a lane's topics by timestamp, so a backlog stamped all in the same
    millisecond would be folded out of causal order (and publish far fewer updates)."""
    n, futures = 0, []
    start = datetime.now(UTC) - timedelta(hours=1)
    for i in range(tasks):
        for topic, event in run_events(f"{prefix}-{i}", steps=4, start=start):
            name = producer.settings.topics.name(topic)
            futures.append(
                await producer.kafka.send(
                    name,
                    encode(event),
                    key=event.task_id.encode(),
                    timestamp_ms=int(event.occurred_at.timestamp() * 1000),
                )
            )
            n += 1
    await asyncio.gather(*futures)
    return n


def _samples(counter: Any) -> list[Any]:
    """The values of a labelled prometheus counter (for the bench's own figures)."""
    return [child._value for child in counter._metrics.values()]


async def main(tasks: int) -> None:
    settings = ProgressSettings(topic_prefix=f"bench-{uuid.uuid4().hex[:8]}.")
    await ensure_topics(settings)
    async with EventProducer(settings, "bench") as producer:
        started = time.perf_counter()
        total = await produce_backlog(producer, tasks)
        print(f"produced {total} events in {time.perf_counter() - started:.1f}s")

        fold = FoldService(settings)
        stopping = asyncio.Event()
        base = metrics.EVENTS_FOLDED._value.get()
        running = asyncio.create_task(fold.run(stopping))
        while not fold.ready:  # noqa: ASYNC110 - polling a counter is the measurement
            await asyncio.sleep(0.01)
        started, cpu = time.perf_counter(), time.process_time()
        while metrics.EVENTS_FOLDED._value.get() - base < total:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        published = sum(s.get() for s in _samples(metrics.UPDATES_PUBLISHED))
        print(
            f"fold throughput: {total / seconds:,.0f} events/s ({total} in {seconds:.1f}s, "
            f"{published:,.0f} updates; CPU time {cpu:.1f}s = {total / cpu:,.0f} events per "
            "CPU second; load average " + " ".join(f"{x:.1f}" for x in os.getloadavg()) + ")"
        )

        # added latency at a light rate: send, then wait for the update of that event
        consumer = AIOKafkaConsumer(
            settings.topics.name(Topic.PROGRESS_UPDATES),
            bootstrap_servers=settings.kafka_bootstrap_servers,
            isolation_level="read_committed",
            auto_offset_reset="latest",
        )
        await consumer.start()
        await asyncio.sleep(2)  # let the consumer get its assignment at the end
        sent: dict[str, float] = {}
        latencies: list[float] = []

        async def receive() -> None:
            import json

            async for record in consumer:
                update = json.loads(record.value)
                if update["event_id"] in sent:
                    latencies.append(time.perf_counter() - sent[update["event_id"]])

        receiving = asyncio.create_task(receive())
        for i in range(60):
            for topic, event in run_events(f"l-{i}", steps=1)[:4]:
                sent[event.event_id] = time.perf_counter()
                await producer.send(topic, event)
                await asyncio.sleep(0.02)
        deadline = time.perf_counter() + 20
        while len(latencies) < len(sent) and time.perf_counter() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.1)
        receiving.cancel()
        await consumer.stop()
        stopping.set()
        await running
        qs = statistics.quantiles(latencies, n=100)
        print(
            f"added latency ({len(latencies)} updates): p50 {qs[49] * 1000:.0f} ms, "
            f"p99 {qs[98] * 1000:.0f} ms"
        )

    with tempfile.TemporaryDirectory() as tmp:
        store, stored, seconds = await rebuild(settings, f"sqlite:///{tmp}/rebuild.db")
        store.close()
        print(
            f"rebuild: {stored} updates in {seconds:.1f}s ({stored / seconds:,.0f}/s; "
            f"1,000,000 would take ~{1_000_000 / (stored / seconds):.0f}s)"
        )
    await delete_topics(settings)  # the bench's own topics


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=3000)
    asyncio.run(main(parser.parse_args().tasks))

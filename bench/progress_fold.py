"""Progress service figures on the real broker: fold throughput, added latency, rebuild time.

    KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:19092 python bench/progress_fold.py [--tasks 3000]
    KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:19092 python bench/progress_fold.py --processes 2

Prints events/s through the fold (backlog of `--tasks` runs, ~33 events each), the added
latency from a pipeline topic to `progress.updates` (p50/p99, at a light steady rate) and the
time to rebuild a SQLite read model from the resulting updates. Uses its own topic prefix.

`--processes N` instead runs N service processes (`python -m ytmaker_progress`, fold only:
no API, no ETA) in one consumer group, waits until they are ready, then produces the backlog
and measures end to end: from the first event sent to the last update seen on
`progress.updates`, with the CPU seconds of the fold processes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from progress_rebuild import delete_topics

from ytmaker_dev.ports import free_port
from ytmaker_dev.scenario import run_events
from ytmaker_progress import metrics
from ytmaker_progress.rebuild import rebuild
from ytmaker_progress.runners.fold import FoldService
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


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _metric(text: str, name: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name) and not line.startswith("#")
    )


async def main_processes(tasks: int, processes: int, prefill: bool) -> None:
    """N fold processes in one group; end-to-end events/s (see the module doc)."""
    settings = ProgressSettings(topic_prefix=f"bench-{uuid.uuid4().hex[:8]}.")
    await ensure_topics(settings)
    # the backlog, encoded before the clock starts (see produce_backlog)
    start = datetime.now(UTC) - timedelta(hours=1)
    records, pending = [], set()
    for i in range(tasks):
        events = run_events(f"b-{i}", steps=4, start=start)
        pending.add(events[-1][1].event_id)  # a run's terminal event: its update comes last
        for topic, event in events:
            timestamp = int(event.occurred_at.timestamp() * 1000)
            records.append(
                (settings.topics.name(topic), encode(event), event.task_id.encode(), timestamp)
            )
    total = len(records)

    async def produce() -> float:
        async with EventProducer(settings, "bench") as producer:
            started = time.perf_counter()
            futures = [
                await producer.kafka.send(topic, value, key=key, timestamp_ms=ts)
                for topic, value, key, ts in records
            ]
            await asyncio.gather(*futures)
            return time.perf_counter() - started

    if prefill:
        print(f"prefilled {total} events in {await produce():.1f}s")
    ports = [free_port() for _ in range(processes)]
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "YTMAKER_TOPIC_PREFIX": settings.topic_prefix,
        "YTMAKER_PROGRESS_RUN_API": "false",
        "YTMAKER_PROGRESS_RUN_ETA": "false",
        "YTMAKER_LOG_LEVEL": "WARNING",
    }
    updates = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await updates.start()
    name = settings.topics.name(Topic.PROGRESS_UPDATES)
    parts = updates.partitions_for_topic(name) or set()
    if not parts:
        await updates._client.force_metadata_update()
        parts = updates.partitions_for_topic(name) or set()
    updates.assign([TopicPartition(name, p) for p in sorted(parts)])
    await updates.seek_to_beginning()
    seen: list[float] = []  # receipt time of each update

    async def receive() -> None:
        while True:
            batches = await updates.getmany(timeout_ms=200, max_records=10_000)
            now = time.perf_counter()
            for batch in batches.values():
                for record in batch:
                    seen.append(now)
                    assert record.value is not None
                    pending.discard(orjson.loads(record.value)["event_id"])

    receiving = asyncio.create_task(receive())
    started = time.perf_counter()  # with --prefill: the processes' start is the clock's
    children = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "ytmaker_progress",
            env={**env, "YTMAKER_HEALTH_PORT": str(port), "YTMAKER_INSTANCE": f"bench-{i}"},
        )
        for i, port in enumerate(ports)
    ]
    try:
        async with httpx.AsyncClient(timeout=2) as http:
            cpu_before = [0.0] * processes
            produced, own_cpu = 0.0, time.process_time()
            if not prefill:
                # ready = every process has its lanes, and stays so for 3 s (no rebalance left)
                stable_since: float | None = None
                deadline = time.perf_counter() + 120
                while stable_since is None or time.perf_counter() - stable_since < 3:
                    if time.perf_counter() > deadline or any(
                        c.returncode is not None for c in children
                    ):
                        raise RuntimeError("the fold processes did not become ready")
                    try:
                        codes = [
                            (await http.get(f"http://127.0.0.1:{p}/readyz")).status_code
                            for p in ports
                        ]
                    except httpx.HTTPError:
                        codes = []
                    if codes and all(code == 200 for code in codes):
                        stable_since = stable_since or time.perf_counter()
                    else:
                        stable_since = None
                    await asyncio.sleep(0.2)
                cpu_before = [_cpu_seconds(c.pid) for c in children]
                started, own_cpu = time.perf_counter(), time.process_time()
                produced = await produce()
            else:
                # the backlog is there: folding starts when the lanes are restored (ready)
                ready = None
                while ready is None and time.perf_counter() - started < 120:
                    with contextlib.suppress(httpx.HTTPError):
                        codes = [
                            (await http.get(f"http://127.0.0.1:{p}/readyz")).status_code
                            for p in ports
                        ]
                        if all(code == 200 for code in codes):
                            ready = time.perf_counter()
                    await asyncio.sleep(0.02)
            # done: every run's terminal event has its update, and nothing came for 2 s
            deadline = time.perf_counter() + 600
            while (pending or not seen or time.perf_counter() - seen[-1] < 2) and (  # noqa: ASYNC110
                time.perf_counter() < deadline
            ):
                await asyncio.sleep(0.1)
            receiving.cancel()
            seconds = seen[-1] - started
            cpu = [_cpu_seconds(c.pid) - b for c, b in zip(children, cpu_before, strict=True)]
            own_cpu = time.process_time() - own_cpu
            folded = [
                _metric(
                    (await http.get(f"http://127.0.0.1:{p}/metrics")).text,
                    "ytmaker_progress_events_folded_total",
                )
                for p in ports
            ]
        clock = "processes started" if prefill else "first sent"
        if prefill and ready is not None:
            print(
                f"from ready (lanes restored, {ready - started:.1f}s after start) to the last "
                f"update: {total / (seen[-1] - ready):,.0f} events/s in {seen[-1] - ready:.1f}s"
            )
        print(
            f"processes {processes}{' (prefilled)' if prefill else ''}: "
            f"{total / seconds:,.0f} events/s end to end ({total} events, {clock} -> last "
            f"update {seconds:.1f}s; produced in {produced:.1f}s; {len(seen):,} updates; "
            f"{len(pending)} runs unfinished); fold CPU {sum(cpu):.1f}s = "
            f"{total / sum(cpu):,.0f} events per CPU second (per process "
            + ", ".join(f"{c:.1f}s/{f:,.0f} events" for c, f in zip(cpu, folded, strict=True))
            + f"); bench process CPU {own_cpu:.1f}s; load average "
            + " ".join(f"{x:.2f}" for x in os.getloadavg())
        )
    finally:
        receiving.cancel()
        await updates.stop()
        for child in children:
            child.terminate()
        for child in children:
            try:
                await asyncio.wait_for(child.wait(), 30)
            except TimeoutError:
                child.kill()
                await child.wait()
        await delete_topics(settings)  # the bench's own topics


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=3000)
    parser.add_argument(
        "--processes", type=int, default=0, help="N fold processes, end to end (module doc)"
    )
    parser.add_argument(
        "--prefill",
        action="store_true",
        help="with --processes: produce the backlog first, clock from the processes' start",
    )
    args = parser.parse_args()
    if args.processes:
        asyncio.run(main_processes(args.tasks, args.processes, args.prefill))
    else:
        asyncio.run(main(args.tasks))

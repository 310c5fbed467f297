"""Rebuild of the progress read model from 1,000,000 updates, timed on the real broker.

    KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:19092 python bench/progress_rebuild.py [--updates 1000000]
        [--prefix P (reuse topics made by an earlier run with --keep)] [--keep] [--into URL]

Writes `--updates` updates (whole runs, folded once and copied per task id: the same bytes the
fold writes) and one `task.requested` per run into a fresh test-prefixed topic set, then times
`rebuild` into a fresh SQLite file (or `--into`). Prints the figures; deletes the topics it
made unless `--keep`.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from ytmaker_dev.scenario import run_events
from ytmaker_progress.fold import Folded, apply
from ytmaker_progress.rebuild import rebuild
from ytmaker_progress.records import encode_update
from ytmaker_progress.settings import ProgressSettings
from ytmaker_shared.events import TaskRequested, encode
from ytmaker_shared.kafka import ensure_topics
from ytmaker_shared.topics import Topic

TEMPLATE = "tmpl-0000000"


def template() -> tuple[bytes, list[bytes]]:
    """One run's `task.requested` and its updates, as bytes, for the task id TEMPLATE."""
    start = datetime.now(UTC) - timedelta(hours=2)
    state: Folded | None = None
    updates: list[bytes] = []
    requested = b""
    for _, event in run_events(TEMPLATE, steps=4, start=start):
        if isinstance(event, TaskRequested):
            requested = encode(event)
        state, out = apply(state, event)
        updates += [encode_update(u) for u in out]
    return requested, updates


async def produce(settings: ProgressSettings, total: int) -> tuple[int, float]:
    requested, updates = template()
    tasks = -(-total // len(updates))
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        acks="all",
        enable_idempotence=True,
        linger_ms=20,
        max_batch_size=512 * 1024,
        compression_type=None,
    )
    await producer.start()
    started = time.perf_counter()
    sent = 0
    try:
        names = settings.topics
        pending = []
        for i in range(tasks):
            task_id = f"t{i:011d}".encode()
            pending.append(
                await producer.send(
                    names.name(Topic.TASKS),
                    requested.replace(TEMPLATE.encode(), task_id),
                    key=task_id,
                )
            )
            for value in updates[: total - sent]:
                pending.append(
                    await producer.send(
                        names.name(Topic.PROGRESS_UPDATES),
                        value.replace(TEMPLATE.encode(), task_id),
                        key=task_id,
                    )
                )
            sent += min(len(updates), total - sent)
            if len(pending) > 50_000:
                await asyncio.gather(*pending)
                pending = []
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return sent, time.perf_counter() - started


def _children_cpu() -> float:
    """CPU seconds of this process's children that have ended (the rebuild's writer)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


async def delete_topics(settings: ProgressSettings) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        await admin.delete_topics(settings.topics.all())
    finally:
        await admin.close()


async def main(total: int, prefix: str | None, keep: bool, into: str | None) -> None:
    settings = ProgressSettings(topic_prefix=prefix or f"bench-rebuild-{uuid.uuid4().hex[:8]}.")
    try:
        if prefix is None:
            await ensure_topics(settings)
            sent, seconds = await produce(settings, total)
            print(f"produced {sent:,} updates in {seconds:.1f}s under {settings.topic_prefix}")
        with tempfile.TemporaryDirectory() as tmp:
            url = into or f"sqlite:///{tmp}/rebuild.db"
            cpu, writer = time.process_time(), _children_cpu()
            store, stored, seconds = await rebuild(settings, url)
            cpu, writer = time.process_time() - cpu, _children_cpu() - writer
            counts = {k: len(v) for k, v in store.dump().items()}
            store.close()
        print(
            f"rebuild: {stored:,} updates in {seconds:.1f}s ({stored / seconds:,.0f} updates/s; "
            f"CPU time of the process {cpu:.1f}s, of its writer {writer:.1f}s); rows {counts}"
        )
    finally:
        if not keep:
            await delete_topics(settings)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--updates", type=int, default=1_000_000)
    parser.add_argument("--prefix", help="reuse the topics of an earlier --keep run")
    parser.add_argument("--keep", action="store_true", help="keep the topics for another run")
    parser.add_argument("--into", help="database URL (default: a temporary SQLite file)")
    a = parser.parse_args()
    asyncio.run(main(a.updates, a.prefix, a.keep, a.into))

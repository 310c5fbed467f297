"""One fetch from a consumer that gives up as soon as the process is stopping: the one
poll-or-stop step of every reader (the group-less `LogReader` and the fold's group member)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

#: Records per partition, in offset order.
Batch = dict[TopicPartition, list[Any]]


async def poll_or_stop(
    consumer: AIOKafkaConsumer,
    stopping: asyncio.Event | None,
    *,
    timeout_ms: int,
    max_records: int | None,
    partitions: Sequence[TopicPartition] = (),
) -> Batch:
    """One fetch's records (empty after `timeout_ms`, or when `stopping` is set meanwhile)."""
    poll = asyncio.ensure_future(
        consumer.getmany(*partitions, timeout_ms=timeout_ms, max_records=max_records)
    )
    if stopping is None:
        batch: Batch = await poll
        return batch
    stop = asyncio.ensure_future(stopping.wait())
    await asyncio.wait({poll, stop}, return_when=asyncio.FIRST_COMPLETED)
    stop.cancel()
    if not poll.done():
        poll.cancel()
        return {}
    batch = poll.result()
    return batch

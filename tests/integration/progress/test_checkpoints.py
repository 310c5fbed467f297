"""A lane's updates go out as they are folded, uncommitted, and its checkpoints are committed
on their own cadence (`progress_checkpoint_interval_ms`, decision 0038): an update is readable
long before the transaction that holds it commits, and nothing is left out."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest

from tests.support.topics import read_topic
from tests.support.wait import wait_until
from ytmaker_dev.scenario import run_events
from ytmaker_progress.positions import decode_checkpoint, is_positions
from ytmaker_progress.runners.fold import FoldService
from ytmaker_progress.settings import ProgressSettings
from ytmaker_shared.kafka import EventProducer
from ytmaker_shared.topics import Topic

from .conftest import read_updates

pytestmark = pytest.mark.kafka

INTERVAL_S = 3.0


async def test_updates_are_readable_before_their_checkpoint_commits(
    settings: ProgressSettings, publisher: EventProducer
) -> None:
    slow = settings.model_copy(update={"progress_checkpoint_interval_ms": INTERVAL_S * 1000})
    fold = FoldService(slow)
    stopping = asyncio.Event()
    folding = asyncio.create_task(fold.run(stopping))
    try:
        await wait_until(lambda: fold.ready, timeout=60, what="lanes restored")
        run = run_events("cp-1", steps=5)
        for topic, event in run[:4]:
            await publisher.send(topic, event)
        sent = time.monotonic()
        early = await read_updates(slow, until=4, timeout=30)
        seen_after = time.monotonic() - sent
        checkpoints = [
            r for r in await read_topic(slow, Topic.PROGRESS_STATE) if is_positions(r.headers)
        ]
        for topic, event in run[4:]:
            await publisher.send(topic, event)
        updates = await read_updates(slow, until=len(run), timeout=60)
    finally:
        stopping.set()
        with contextlib.suppress(asyncio.CancelledError):
            await folding

    assert [u["event_id"] for _, _, u in early] == [e.event_id for _, e in run[:4]]
    assert seen_after < INTERVAL_S  # before the lane's first checkpoint could commit
    assert checkpoints == []  # nothing committed yet when the updates were read
    assert [u["event_id"] for _, _, u in updates] == [e.event_id for _, e in run]

    # Stopping committed a last checkpoint: at the end of the inputs and of the updates.
    [last] = [r for r in await read_topic(slow, Topic.PROGRESS_STATE) if is_positions(r.headers)][
        -1:
    ]
    checkpoint = decode_checkpoint(last.value, slow.topics, last.partition)
    assert checkpoint.updates_end == updates[-1][1] + 1
    assert sum(checkpoint.positions.values()) == len(run)

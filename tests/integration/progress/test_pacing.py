"""A lane's transactions are paced (`progress_transaction_interval_ms`, decision 0034): events
that arrive meanwhile go out together in the next transaction, and none is left out.

Transactions are counted from the log itself: each committed transaction ends with a commit
marker, which takes an offset of every partition it wrote, so the offsets of the lane's
updates run in as many unbroken stretches as there were transactions.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time

import pytest

from tests.support.wait import wait_until
from ytmaker_progress.foldloop import FoldService
from ytmaker_progress.scenario import run_events
from ytmaker_progress.settings import ProgressSettings
from ytmaker_shared.kafka import EventProducer

from .conftest import read_updates

pytestmark = pytest.mark.kafka

INTERVAL_S = 0.2


async def test_events_arriving_within_the_interval_share_a_transaction(
    settings: ProgressSettings, publisher: EventProducer
) -> None:
    paced = settings.model_copy(update={"progress_transaction_interval_ms": INTERVAL_S * 1000})
    fold = FoldService(paced)
    stopping = asyncio.Event()
    folding = asyncio.create_task(fold.run(stopping))
    try:
        await wait_until(lambda: fold.ready, timeout=60, what="lanes restored")
        run = run_events("paced-1", steps=20)
        started = time.monotonic()
        for topic, event in run:  # one task: one lane
            await publisher.send(topic, event)
            await asyncio.sleep(0.01)
        sending_s = time.monotonic() - started
        updates = await read_updates(paced, until=len(run), timeout=60)
    finally:
        stopping.set()
        with contextlib.suppress(asyncio.CancelledError):
            await folding

    assert [u["event_id"] for _, _, u in updates] == [e.event_id for _, e in run]
    offsets = [offset for _, offset, _ in updates]
    transactions = 1 + sum(1 for a, b in itertools.pairwise(offsets) if b != a + 1)
    # Unpaced, a lane commits every few milliseconds: about one transaction per event here.
    assert transactions <= sending_s / INTERVAL_S + 2, (transactions, len(run), sending_s)
    assert len(run) >= 4 * transactions

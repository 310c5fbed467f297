"""The stall watch: every `progress_stall_check_s`, fail the tasks that stalled (rules in
`stall.py`). It runs beside the read model, which it asks for silent tasks, and writes to the
log like any producer: `task.failed` to `pipeline.tasks`, then the cancel to
`pipeline.control`. Several read-side replicas write the same event ids; the fold takes them
once."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from ytmaker_progress import SERVICE, metrics
from ytmaker_progress.readmodel.store import Store
from ytmaker_progress.settings import ProgressSettings
from ytmaker_progress.stall import stall_events, stalled
from ytmaker_shared.kafka import EventProducer
from ytmaker_shared.stages import Stage
from ytmaker_shared.topics import Topic
from ytmaker_shared.transient import is_transient

log = logging.getLogger(__name__)


class StallWatch:
    def __init__(self, settings: ProgressSettings, store: Store, ready: Callable[[], bool]):
        self.settings = settings
        self.store = store
        self.ready = ready  # the read model has caught up: silence in it is real silence
        self.policy = settings.stall_policy()
        self.producer_name = f"{SERVICE}/{settings.instance}"
        self.page = 1000  # silent tasks asked for at a time

    async def run(self, stopping: asyncio.Event) -> None:
        producer = EventProducer(self.settings, SERVICE)
        await producer.start()
        watching_since = datetime.now(UTC)
        try:
            while not await _stopped_within(stopping, self.settings.progress_stall_check_s):
                if not self.ready():
                    continue
                try:
                    await self.check(producer, watching_since)
                except Exception as exc:
                    if not is_transient(exc):
                        raise
                    log.warning("stall check failed; trying again", extra={"error": repr(exc)})
        finally:
            await producer.stop()

    async def check(self, producer: EventProducer, watching_since: datetime) -> int:
        """Fail every task that stalled; returns how many were failed now."""
        now = datetime.now(UTC)
        shortest = timedelta(
            seconds=min(self.policy.limit_s(stage) for stage in Stage) + self.policy.grace_s
        )
        if now - watching_since <= shortest:
            return 0  # nothing can have stalled since the watch started
        failed = 0
        async for state in _pages(self.store, now - shortest, self.page):
            stall = stalled(state, now, watching_since, self.policy)
            if stall is None:
                continue
            # A task failed in an earlier round may still look silent until the fold and the
            # read model have it: the same event ids again, which the fold takes once.
            task_failed, cancel = stall_events(state, stall, self.producer_name)
            await producer.send(Topic.TASKS, task_failed)
            await producer.send(Topic.CONTROL, cancel)
            metrics.TASKS_STALLED.inc()
            log.warning(
                "task stalled: failed",
                extra={"task_id": stall.task_id, "stage": stall.stage.value},
            )
            failed += 1
        return failed


async def _pages(store: Store, before: datetime, page: int) -> AsyncIterator[dict[str, Any]]:
    """Every task silent since before `before`, longest silent first, `page` at a time: a page
    of tasks within a longer stage limit must not hide a stalled one behind it."""
    after: tuple[datetime, str] | None = None
    while True:
        states = await asyncio.to_thread(store.silent_tasks, before, page, after)
        for state in states:
            yield state
        if len(states) < page:
            return
        last = states[-1]
        after = (datetime.fromisoformat(last["silent_since"]), last["task_id"])


async def _stopped_within(stopping: asyncio.Event, seconds: float) -> bool:
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await stopping.wait()
    return stopping.is_set()

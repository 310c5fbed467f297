"""The ETA projector: stage durations over the last hour → `progress.eta` → the fold
(docs/decisions/0024-eta-window.md).

It follows `progress.updates` (uncommitted, every partition, no consumer group), adds each
completed stage attempt once to a hopping `StageWindow`, and for each update of a running task
estimates the time left (`eta.estimate`). A significant change is written to `progress.eta`
(keyed by task_id, so it lands in the task's lane); the fold folds it into `eta_seconds` and
publishes an update like for any other input. Nothing is stored: on start it replays the
updates of the last window (by timestamp) to rebuild the window, and writes estimates only
once caught up. At-least-once is enough: an estimate is idempotent in the fold.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord

from ytmaker_progress import SERVICE
from ytmaker_progress.eta import EtaEstimated, estimate, significant
from ytmaker_progress.readmodel.rows import checked_update, parse_time
from ytmaker_progress.settings import ProgressSettings
from ytmaker_progress.window import StageWindow
from ytmaker_shared.events import DecodeError, decode_with
from ytmaker_shared.kafka import EventProducer
from ytmaker_shared.kafka.reader import LogReader
from ytmaker_shared.kafka.skipped import skip_record
from ytmaker_shared.progress import TERMINAL_STATUSES
from ytmaker_shared.topics import Topic

log = logging.getLogger(__name__)


@dataclass
class _Task:
    """What the projector remembers of a running task."""

    counted: set[tuple[str, int]] = field(default_factory=set)  # (stage, attempt) in the window
    shown: float | None = None  # eta_seconds in its latest update
    sent: float | None = None  # the latest estimate written, until an update shows it


class EtaProjector:
    """`await run(stopping)`; `window` and `estimates` (written so far) are for tests and
    metrics. Raises BrokerUnavailable when the broker cannot be reached."""

    def __init__(self, settings: ProgressSettings) -> None:
        self.settings = settings
        self.window = StageWindow(settings.progress_eta_window_s, settings.progress_eta_step_s)
        self.tasks: dict[str, _Task] = {}
        self.caught_up = False
        self.estimates = 0
        self.updates_topic = settings.topics.name(Topic.PROGRESS_UPDATES)
        self.eta_topic = settings.topics.name(Topic.PROGRESS_ETA)

    async def run(self, stopping: asyncio.Event) -> None:
        reader = LogReader(
            self.settings,
            name="progress-eta",
            isolation="read_uncommitted",
            # Estimates need no haste: one fetch a second, not one per write of the fold (a
            # broker request each).
            fetch_max_wait_ms=1000,
            fetch_min_bytes=1024 * 1024,
        )
        async with reader, EventProducer(self.settings, "progress-eta") as producer:
            ends = await self._start_position(reader)
            async for batch in reader.batches(stopping, max_records=5000):
                sends = []
                for records in batch.values():
                    for record in records:
                        sends += await self._handle(producer, record)
                await asyncio.gather(*sends)
                if not self.caught_up and await reader.reached(ends):
                    self.caught_up = True
                    log.info("ETA window rebuilt", extra=self.window.averages())

    async def _start_position(self, reader: LogReader) -> dict[TopicPartition, int]:
        """Assign every partition at the first update of the last window; the end offsets."""
        tps = await reader.assign(await reader.partitions(self.updates_topic))
        since_ms = int((time.time() - self.settings.progress_eta_window_s) * 1000)
        starts = await reader.offsets_at(tps, since_ms)
        ends = await reader.ends(tps)
        reader.seek({tp: _or(starts[tp], ends[tp]) for tp in tps})
        return ends

    async def _handle(
        self, producer: EventProducer, record: ConsumerRecord[bytes, bytes]
    ) -> list[asyncio.Future[object]]:
        try:
            update = decode_with(checked_update, record.value)
        except DecodeError as exc:
            skip_record(SERVICE, record, exc)
            return []
        state = update["state"]
        task_id, status = update["task_id"], state["status"]
        self.window.advance(parse_time(state.get("updated_at") or update["occurred_at"]))
        task = self.tasks.setdefault(task_id, _Task())
        self._count(task, state)
        if status in TERMINAL_STATUSES:
            del self.tasks[task_id]
            return []
        task.shown = state.get("eta_seconds")
        if task.sent is not None and task.shown == task.sent:
            task.sent = None  # the fold has published it
        left = estimate(state, self.window.averages())
        if not self.caught_up or left is None:
            return []
        if not significant(task.sent if task.sent is not None else task.shown, left):
            return []
        task.sent = left
        self.estimates += 1
        event = EtaEstimated(
            task_id=task_id,
            project_id=update["project_id"],
            owner=update["owner"],
            eta_seconds=left,
            based_on_offset=record.offset,
        )
        future = await producer.kafka.send(
            self.eta_topic, event.model_dump_json().encode(), key=task_id.encode()
        )
        return [future]

    def _count(self, task: _Task, state: dict[str, Any]) -> None:
        """Add the task's newly completed stage attempts to the window."""
        for stage, st in (state.get("stages") or {}).items():
            if st.get("status") != "completed" or not st.get("started_at"):
                continue
            key = (stage, int(st.get("attempt", 0)))
            if key in task.counted or not st.get("finished_at"):
                continue
            task.counted.add(key)
            finished = parse_time(st["finished_at"])
            seconds = (finished - parse_time(st["started_at"])).total_seconds()
            self.window.add(stage, finished, seconds)


def _or(offset: int | None, default: int) -> int:
    return default if offset is None else offset

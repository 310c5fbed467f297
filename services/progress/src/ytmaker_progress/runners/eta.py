"""The ETA projector: stage durations over the last hour → `progress.eta` → the fold
(docs/decisions/0024-eta-window.md, 0085-eta-fed-by-the-sink.md).

It rides on the read model's sink: the sink hands it the latest update of each task in every
batch it stores (`saw`), already parsed and checked. The projector adds each completed stage
attempt once to a hopping `StageWindow` and estimates the time left of each running task
(`eta.estimate`). A significant change is written to `progress.eta` (keyed by task_id, so it
lands in the task's lane); the fold folds it into `eta_seconds` and publishes an update like
for any other input. On start, before the sink reads, the window is filled from the read
model's finished stage attempts of the last window (`load`); estimates are written only once
the sink has caught up. At-least-once is enough: an estimate is idempotent in the fold.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from ytmaker_progress.eta import EtaEstimated, estimate, significant
from ytmaker_progress.readmodel.rows import parse_time
from ytmaker_progress.readmodel.store import Store
from ytmaker_progress.settings import ProgressSettings
from ytmaker_progress.window import StageWindow
from ytmaker_shared.kafka import EventProducer
from ytmaker_shared.progress import TERMINAL_STATUSES
from ytmaker_shared.topics import Topic

log = logging.getLogger(__name__)

#: What the sink hands over per task: (offset, state, occurred_at) of its latest update in a
#: batch, as `rows.Rows.latest` holds it (the state checked by `rows.checked_update`).
Latest = Mapping[str, tuple[int, dict[str, Any], str]]


#: How far ahead of this machine's clock an update's time may be (another machine's clock).
CLOCK_SKEW = timedelta(minutes=5)


def _not_ahead(at: datetime) -> bool:
    """Whether `at` is not in the future beyond `CLOCK_SKEW`. The window's clock is the times
    it is given: one far ahead (a stage's wrong clock, a hostile record) would move it past
    every real sample for good, and leave its own as the average."""
    return at <= datetime.now(UTC) + CLOCK_SKEW


@dataclass
class _Task:
    """What the projector remembers of a running task."""

    counted: set[tuple[str, int]] = field(default_factory=set)  # (stage, attempt) in the window
    shown: float | None = None  # eta_seconds in its latest update
    sent: float | None = None  # the latest estimate written, until an update shows it


class EtaProjector:
    """`load(store)` before the sink starts, `saw(latest)` from the sink, `await run(stopping,
    caught_up)` to write the estimates; `window` and `estimates` (written so far) are for tests
    and metrics. `run` raises BrokerUnavailable when the broker cannot be reached."""

    def __init__(self, settings: ProgressSettings) -> None:
        self.settings = settings
        self.window = StageWindow(settings.progress_eta_window_s, settings.progress_eta_step_s)
        self.tasks: dict[str, _Task] = {}
        self.caught_up = False
        self.estimates = 0
        self.eta_topic = settings.topics.name(Topic.PROGRESS_ETA)
        # at most one estimate waiting per task: a newer one replaces it, so the sink never
        # waits for the broker and what waits is bounded by the running tasks
        self._outbox: dict[str, EtaEstimated] = {}
        self._posted = asyncio.Event()

    def load(self, store: Store) -> None:
        """Fill the window from the read model (blocking: call in a thread, before the sink
        reads). The attempts of running tasks are marked counted: their next updates repeat
        them."""
        since = datetime.now(UTC) - timedelta(seconds=self.settings.progress_eta_window_s)
        runs = store.recent_stage_runs(since)
        for task_id, stage, attempt, seconds, finished_at, status in runs:
            self.window.add(stage, finished_at, seconds)
            if status not in TERMINAL_STATUSES:
                self.tasks.setdefault(task_id, _Task()).counted.add((stage, attempt))
        log.info("ETA window loaded", extra={"attempts": len(runs), **self.window.averages()})

    def saw(self, latest: Latest) -> None:
        """The latest update of each task in a batch the sink stores. Never raises: a bug here
        must not stop the read model."""
        for task_id, (offset, state, occurred_at) in latest.items():
            try:
                self._saw(task_id, offset, state, occurred_at)
            except Exception:
                log.exception("ETA projector failed on an update", extra={"offset": offset})

    def _saw(self, task_id: str, offset: int, state: dict[str, Any], occurred_at: str) -> None:
        updated = parse_time(state.get("updated_at") or occurred_at)
        if _not_ahead(updated):
            self.window.advance(updated)
        task = self.tasks.setdefault(task_id, _Task())
        self._count(task, state)
        if state["status"] in TERMINAL_STATUSES:
            del self.tasks[task_id]
            self._outbox.pop(task_id, None)
            return
        shown = state.get("eta_seconds")  # not a column: the read model does not check it
        valid = isinstance(shown, int | float) and not isinstance(shown, bool) and shown >= 0
        task.shown = shown if valid else None
        if task.sent is not None and task.shown == task.sent:
            task.sent = None  # the fold has published it
        left = estimate(state, self.window.averages())
        if not self.caught_up or left is None:
            return
        if not significant(task.sent if task.sent is not None else task.shown, left):
            return
        task.sent = left
        self._outbox[task_id] = EtaEstimated(
            task_id=task_id,
            project_id=state["project_id"],
            owner=state["owner"],
            eta_seconds=left,
            based_on_offset=offset,
        )
        self._posted.set()

    def _count(self, task: _Task, state: dict[str, Any]) -> None:
        """Add the task's newly completed stage attempts to the window."""
        for stage, st in state["stages"].items():
            if st["status"] != "completed" or not st.get("started_at"):
                continue
            key = (stage, int(st.get("attempt") or 0))
            if key in task.counted or not st.get("finished_at"):
                continue
            task.counted.add(key)
            finished = parse_time(st["finished_at"])
            seconds = (finished - parse_time(st["started_at"])).total_seconds()
            if _not_ahead(finished):
                self.window.add(stage, finished, seconds)

    async def run(self, stopping: asyncio.Event, caught_up: asyncio.Event) -> None:
        """Write the estimates the sink's updates lead to, from when the sink has caught up
        (`caught_up`) until `stopping`."""
        async with EventProducer(self.settings, "progress-eta") as producer:
            if not await _first(caught_up, stopping):
                return
            self.caught_up = True
            log.info("ETA projector caught up", extra=self.window.averages())
            while await _first(self._posted, stopping):
                self._posted.clear()
                estimates, self._outbox = list(self._outbox.values()), {}
                sends = [
                    await producer.kafka.send(
                        self.eta_topic, e.model_dump_json().encode(), key=e.task_id.encode()
                    )
                    for e in estimates
                ]
                await asyncio.gather(*sends)
                self.estimates += len(estimates)


async def _first(event: asyncio.Event, stopping: asyncio.Event) -> bool:
    """Wait for `event` or `stopping`; whether `event` came (and stopping did not)."""
    if not event.is_set():
        waits = [asyncio.ensure_future(e.wait()) for e in (event, stopping)]
        _, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for wait in pending:
            wait.cancel()
    return event.is_set() and not stopping.is_set()

"""The shared loop of every stage service (STYLE: a stage's logic plus a thin loop, written
once; decision 0010 explains the choices).

- Triggers come through `ConsumerLoop` on the previous stage's topic, in the service's
  consumer group: instances share partitions, so each task is one instance's.
- Work runs as background jobs, at most `stage_max_tasks` attempts at once; a trigger's offset
  is committed only once every job it started has produced its terminal event, in offset
  order per partition. While the instance is full it pauses fetching (backpressure).
- Every instance reads all of `pipeline.control` with its own group-less consumer, from the
  beginning, before it takes any trigger: it must see the cancels, pauses and resumes of
  whatever task it runs, whichever instance runs it.
- Terminal events go through the `Outbox` (idempotency) before they are published.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Any

from aiokafka import TopicPartition

from ytmaker_shared.artifacts import ArtifactStore
from ytmaker_shared.events import (
    ErrorInfo,
    Event,
    StageEvent,
    decode,
)
from ytmaker_shared.kafka import ConsumerLoop, EventProducer, ensure_topics
from ytmaker_shared.kafka.consumer import Record
from ytmaker_shared.kafka.producer import BrokerUnavailable
from ytmaker_shared.kafka.reader import LogReader, decoded
from ytmaker_shared.logging import log_context
from ytmaker_shared.service import run_service
from ytmaker_shared.stageworker.control import Control, ControlBoard
from ytmaker_shared.stageworker.errors import INTERNAL_ERROR
from ytmaker_shared.stageworker.offsets import OffsetTracker
from ytmaker_shared.stageworker.outbox import Outbox
from ytmaker_shared.stageworker.runner import Job, JobRunner, StopReason
from ytmaker_shared.stageworker.settings import StageSettings
from ytmaker_shared.stageworker.work import StageWork
from ytmaker_shared.topics import STAGE_TOPIC, Topic

log = logging.getLogger(__name__)


class StageWorker:
    """Runs the `works` of one service. `await worker.run(stopping)` until `stopping` is set
    (fits `run_service`); `worker.ready()` for /readyz."""

    def __init__(
        self,
        settings: StageSettings,
        service: str,
        works: Sequence[StageWork],
        topics: Sequence[Topic],
        *,
        store: ArtifactStore | None = None,
    ) -> None:
        if not works:
            raise ValueError("a stage worker needs at least one StageWork")
        self.settings = settings
        self.service = service
        self.works = list(works)
        self.policies = {w.stage: settings.policy_for(w.policy) for w in self.works}
        self.store = store or settings.artifact_store()
        self.producer = EventProducer(settings, service)
        self.producer_name = f"{service}/{settings.instance}"
        self.outbox = Outbox(self.store, service)
        self.control = ControlBoard()
        self.offsets: OffsetTracker[TopicPartition] = OffsetTracker()
        self.jobs: dict[tuple[str, str], Job] = {}
        self.slots = asyncio.Semaphore(settings.stage_max_tasks)
        self._control_ready = asyncio.Event()
        self._stopping = asyncio.Event()
        self.loop = _TriggerLoop(
            self,
            settings,
            service=service,
            group_id=f"{settings.topic_prefix}{service}",
            topics=topics,
            handler=self._handle,
            producer=self.producer,
        )

    def ready(self) -> bool:
        return self._control_ready.is_set() and self.loop.ready

    # --- lifecycle --------------------------------------------------------------------------

    async def run(self, stopping: asyncio.Event) -> None:
        """Start everything, run until `stopping`, then hand back unfinished work and stop."""
        if self.settings.stage_create_topics:
            await ensure_topics(self.settings)
        await self.producer.start()
        control = asyncio.create_task(self._control_loop(), name="control")
        triggers: asyncio.Task[None] | None = None
        try:
            caught_up = asyncio.create_task(self._control_ready.wait())
            stop_wait = asyncio.create_task(stopping.wait())
            await asyncio.wait({caught_up, stop_wait, control}, return_when=asyncio.FIRST_COMPLETED)
            caught_up.cancel()
            if control.done():
                control.result()  # raises why the control consumer died
            if not stopping.is_set():
                triggers = asyncio.create_task(self.loop.run(), name="triggers")
                await asyncio.wait(
                    {stop_wait, triggers, control}, return_when=asyncio.FIRST_COMPLETED
                )
                for part in (triggers, control):  # a part that ended on its own: exit
                    if part.done() and not stopping.is_set():
                        part.result()
                        raise RuntimeError(f"the {part.get_name()} loop ended unexpectedly")
            stop_wait.cancel()
        finally:
            self._stopping.set()
            self.loop.stop()
            await self._hand_back(list(self.jobs.values()))
            if triggers is not None:
                with contextlib.suppress(Exception):
                    await triggers
            control.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await control
            await self.producer.stop()

    async def _hand_back(self, jobs: list[Job]) -> None:
        """Stop jobs without any event: their triggers stay uncommitted and run again."""
        for job in jobs:
            job.stop(StopReason.HANDED_BACK)
        tasks = [j.task for j in jobs if j.task is not None]
        if tasks:
            await asyncio.wait(
                tasks, timeout=max(p.cancel_grace_s for p in self.policies.values()) + 5
            )

    # --- triggers ---------------------------------------------------------------------------

    async def _handle(self, event: Event, record: Record) -> None:
        tp = TopicPartition(record.topic, record.partition)
        for work in self.works:
            if await work.admit(event):
                # A transient failure (broker, storage) keeps the loop on this record.
                await self._trigger(work, event, tp, record.offset)

    async def _trigger(
        self, work: StageWork, event: Event, tp: TopicPartition, offset: int
    ) -> None:
        key = (event.task_id, work.stage.value)
        running = self.jobs.get(key)
        if running is not None:  # a redelivery while it runs: hold this offset too
            running.records.append((tp, offset))
            self.offsets.begin(tp, offset)
            return
        done = await self.outbox.load(event.task_id, work.stage)
        if done is not None:
            if not done.published:
                await self._publish(list(done.events))
                await self.outbox.mark_published(event.task_id, work.stage, list(done.events))
            log.info("already done, nothing to do", extra={"stage": work.stage.value})
            return
        job = Job(work=work, event=event, policy=self.policies[work.stage])
        job.records.append((tp, offset))
        self.offsets.begin(tp, offset)
        self.jobs[key] = job
        if self.control.state(event.task_id) is Control.CANCELLED:
            job.stop(StopReason.CANCELLED)
        job.task = asyncio.create_task(self._run_job(job), name=f"job:{key}")
        self._flow()

    async def _run_job(self, job: Job) -> list[Event] | None:
        runner = JobRunner(
            job,
            producer_name=self.producer_name,
            emit=self._publish_one,
            store=self.store,
            control=self.control,
            slots=self.slots,
            progress_interval_s=self.settings.stage_progress_interval_s,
            on_park=lambda parked: self._park(job, parked),
        )
        with log_context(task_id=job.event.task_id, correlation_id=job.event.correlation_id):
            try:
                try:
                    events = await runner.run()
                except Exception as exc:  # a bug in the runner: fail the stage, keep the process
                    log.exception("job crashed")
                    events = runner.failed(ErrorInfo(code=INTERNAL_ERROR, message=repr(exc)), 1)
                if events is None:
                    return None
                await self._finish(job, events)
                return events
            finally:
                self.jobs.pop(job.key, None)
                self._flow()

    async def _finish(self, job: Job, events: list[Event]) -> None:
        """Record, publish (retrying while the broker is away), mark published, commit."""
        task_id, stage = job.event.task_id, job.work.stage
        await self.outbox.record(task_id, stage, events)
        while True:
            try:
                await self._publish(events)
                break
            except BrokerUnavailable as exc:
                if self._stopping.is_set():
                    log.warning("stopping with unpublished outcome; a redelivery sends it")
                    return
                log.warning("publishing the outcome failed, retrying: %r", exc)
                await asyncio.sleep(1.0)
        await self.outbox.mark_published(task_id, stage, events)
        for tp, offset in job.records:
            self.offsets.end(tp, offset)
        for tp in {tp for tp, _ in job.records}:
            await self.loop.commit_ready(tp)

    async def _publish(self, events: list[Event]) -> None:
        for event in events:
            await self._publish_one(event)

    async def _publish_one(self, event: Event) -> None:
        topic = STAGE_TOPIC[event.stage] if isinstance(event, StageEvent) else Topic.TASKS
        await self.producer.send(topic, event)

    # --- capacity ---------------------------------------------------------------------------

    def _park(self, job: Job, parked: bool) -> None:
        job.parked = parked
        self._flow()

    def _flow(self) -> None:
        """Pause fetching while the instance is full; resume when a job ends or parks."""
        active = sum(1 for j in self.jobs.values() if not j.parked)
        kafka = self.loop.kafka
        assigned = kafka.assignment()
        if not assigned:
            return
        if active >= self.settings.stage_max_tasks:
            kafka.pause(*assigned)
        elif kafka.paused():
            kafka.resume(*kafka.paused())

    # --- control ----------------------------------------------------------------------------

    def _apply_control(self, event: Event) -> None:
        change = self.control.apply(event)
        if change is Control.CANCELLED:
            for job in [j for j in self.jobs.values() if j.event.task_id == event.task_id]:
                log.info("cancelling", extra={"task_id": event.task_id, "stage": job.work.stage})
                job.stop(StopReason.CANCELLED)

    async def _control_loop(self) -> None:
        """Read all of pipeline.control from the beginning, for ever (no consumer group)."""
        topic = self.settings.topics.name(Topic.CONTROL)
        async with LogReader(self.settings, name=f"{self.service}-control") as reader:
            tps = await reader.assign(await reader.partitions(topic, timeout_s=3600))
            await reader.seek_to_beginning(tps)
            ends = await reader.ends(tps)
            async for batch in reader.batches(asyncio.Event(), max_records=500):
                for records in batch.values():
                    for _, event in decoded(self.service, records, decode):
                        self._apply_control(event)
                if not self._control_ready.is_set() and await reader.reached(ends):
                    log.info("control caught up", extra={"partitions": len(tps)})
                    self._control_ready.set()


class _TriggerLoop(ConsumerLoop):
    """`ConsumerLoop` whose commits wait for background work (see `OffsetTracker`)."""

    def __init__(self, worker: StageWorker, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.worker = worker

    async def handled(self, tp: TopicPartition, next_offset: int) -> None:
        self.worker.offsets.handled(tp, next_offset)
        await self.commit_ready(tp)

    async def commit_ready(self, tp: TopicPartition) -> None:
        """Commit the partition as far as its finished work allows."""
        target = self.worker.offsets.committable(tp)
        if target is None:
            return
        await self.commit(tp, target)
        self.worker.offsets.committed(tp, target)

    async def on_revoked(self, partitions: set[TopicPartition]) -> None:
        worker = self.worker
        jobs = [j for j in worker.jobs.values() if any(tp in partitions for tp, _ in j.records)]
        if jobs:
            log.info("handing back %d jobs on rebalance", len(jobs))
            await worker._hand_back(jobs)
        for tp in partitions:
            worker.offsets.forget(tp)

    async def on_assigned(self, partitions: set[TopicPartition]) -> None:
        self.worker._flow()


def run_stage_service(
    service: str, settings: StageSettings, build: Callable[[], StageWorker]
) -> None:
    """The `main()` of a stage service: JSON logs, health server, signals (`run_service`),
    and the worker that `build()` makes, created inside the event loop (aiokafka needs one)."""
    built: list[StageWorker] = []

    async def main(stopping: asyncio.Event) -> None:
        built.append(build())
        await built[0].run(stopping)

    run_service(service, settings, main, lambda: bool(built) and built[0].ready())

"""History for the "with history" runs: finished tasks produced as the pipeline produces them
(task.requested, then each stage's started, progress and completed events on its own topic,
then task.completed), and folded by ytmaker's own progress service into updates, its read
model and whatever else the shipped layout keeps. Nothing is written behind the fold's back.

Events are made from one task's pydantic events (dumped once) with fresh ids and times per
task, so that making a million of them takes seconds; the first task's events are decoded
with ytmaker's own decoder to prove the copies are valid events.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson

from bench.harness.publishers import YtmakerPublisher, requested
from ytmaker_shared.events import (
    Event,
    StageCompleted,
    StageCompletedPayload,
    StageProgressed,
    StageProgressPayload,
    StageStarted,
    StageStartedPayload,
    TaskCompleted,
    TaskCompletedPayload,
    decode,
    new_event_id,
)
from ytmaker_shared.stages import Stage
from ytmaker_shared.topics import STAGE_TOPIC, Topic

#: task.requested, 6 × (started, completed), task.completed: the events besides progress.
FIXED_EVENTS = 1 + 2 * len(Stage) + 1
#: How many tasks of a history have their updates counted by cause: every task of a small
#: history, of a large one about this many, evenly spread, and the last.
COUNTED_TASKS = 20


def run_events(task_id: str, owner: str, updates: int) -> list[list[tuple[Topic, Event]]]:
    """One finished run of `updates` events, each a visible change (one update each), in
    groups that follow each other in time: task.requested, each stage's events, task.completed.
    """
    if updates < FIXED_EVENTS:
        raise ValueError(f"a finished run has at least {FIXED_EVENTS} updates")
    first = requested(task_id, owner)
    groups: list[list[tuple[Topic, Event]]] = [[(Topic.TASKS, first)]]
    stages = list(Stage)
    progress_events = updates - FIXED_EVENTS
    for i, stage in enumerate(stages):
        topic, producer = STAGE_TOPIC[stage], f"{stage}-bench"
        group: list[tuple[Topic, Event]] = [
            (topic, first.caused(StageStarted, producer=producer, stage=stage,
                                 payload=StageStartedPayload()))
        ]  # fmt: skip
        steps = progress_events // len(stages) + (i < progress_events % len(stages))
        for step in range(1, steps + 1):
            payload = StageProgressPayload(
                progress=round(100 * step / (steps + 1), 2),
                completed_steps=step,
                total_steps=steps + 1,
                message=f"{stage} {step}/{steps + 1}",
            )
            group.append(
                (topic, first.caused(StageProgressed, producer=producer, stage=stage,
                                     payload=payload))
            )  # fmt: skip
        group.append(
            (topic, first.caused(StageCompleted, producer=producer, stage=stage,
                                 payload=StageCompletedPayload()))
        )  # fmt: skip
        groups.append(group)
    groups.append(
        [(Topic.TASKS, first.caused(TaskCompleted, producer="upload-bench",
                                    payload=TaskCompletedPayload()))]
    )  # fmt: skip
    return groups


def _copy(event: dict[str, Any], task_id: str, event_id: str, cause: str | None) -> bytes:
    """The template event with this task's ids, `event_id` and the current time."""
    copy = event | {
        "event_id": event_id,
        "task_id": task_id,
        "project_id": f"p-{task_id}",
        "correlation_id": task_id,
        "occurred_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
    }
    if cause is not None:
        copy["causation_id"] = cause
    return orjson.dumps(copy)


async def fill(
    publisher: YtmakerPublisher, owner: str, tasks: int, updates_per_task: int
) -> dict[str, Any]:
    """Produce `tasks` finished runs of `updates_per_task` events each. Group by group over
    all tasks (every task requested, then every task's script, ...), a few ms apart: the fold
    merges its topics by record time, and a run's stages follow each other in time as they
    do in the pipeline (a task.completed folded before its upload's events would end the run
    without them)."""
    started = time.monotonic()
    stem = f"hist-{uuid.uuid4().hex[:8]}"
    groups = [
        [(topic, event.model_dump(mode="json")) for topic, event in group]
        for group in run_events(f"{stem}-template", owner, updates_per_task)
    ]
    names = {topic: publisher.settings.topics.name(topic) for topic in Topic}
    kafka = publisher.producer.kafka
    first_ids = [new_event_id() for _ in range(tasks)]
    task_ids = [new_event_id() for _ in range(tasks)]  # ids as the system issues them
    futures: list[asyncio.Future[Any]] = []
    sent = 0
    for g, group in enumerate(groups):
        for i in range(tasks):
            task_id, key = task_ids[i], task_ids[i].encode()
            for n, (topic, event) in enumerate(group):
                if g == 0 and n == 0:  # task.requested: the cause of every other event
                    value = _copy(event, task_id, first_ids[i], None)
                else:
                    value = _copy(event, task_id, new_event_id(), first_ids[i])
                if i == 0:
                    assert decode(value).task_id == task_id  # a valid event
                futures.append(await kafka.send(names[topic], value=value, key=key))
                sent += 1
            if len(futures) >= 20_000:
                await asyncio.gather(*futures)
                futures = []
        await asyncio.gather(*futures)
        futures = []
        await asyncio.sleep(0.005)  # the next group's records are later by the clock
    return {
        "tasks": tasks,
        "events": sent,
        "first_task": task_ids[0],
        "last_task": task_ids[-1],
        "counted_tasks": [*task_ids[: -1 : max(1, tasks // COUNTED_TASKS)], task_ids[-1]],
        "seconds": round(time.monotonic() - started, 1),
    }

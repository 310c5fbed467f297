"""The fold's memory stays bounded (docs/decisions/0025-progress-memory.md): a finished task's
state leaves memory after the grace period, only a marker stays, and a late event of such a
task is still ignored, before and after a restart, on the real broker."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.support.wait import wait_until
from ytmaker_dev.scenario import run_events
from ytmaker_progress import metrics
from ytmaker_progress.runners.fold import FoldService
from ytmaker_progress.settings import ProgressSettings
from ytmaker_shared.events import StageProgressed, StageProgressPayload
from ytmaker_shared.kafka import EventProducer
from ytmaker_shared.stages import Stage
from ytmaker_shared.topics import STAGE_TOPIC

from .conftest import publish, read_updates

pytestmark = [pytest.mark.kafka]

FINISHED = 12


async def running_fold(settings: ProgressSettings) -> AsyncIterator[FoldService]:
    fold = FoldService(settings.model_copy(update={"progress_evict_after_s": 0.0}))
    stopping = asyncio.Event()
    task = asyncio.create_task(fold.run(stopping))
    try:
        yield fold
    finally:
        stopping.set()
        await task


def held(fold: FoldService) -> tuple[set[str], set[str]]:
    """The task ids with a full state in memory, and those with a finished marker."""
    lanes = list(fold.lanes.values())
    return (
        {t for lane in lanes for t in lane.states},
        {t for lane in lanes for t in lane.finished},
    )


async def test_finished_tasks_are_evicted_and_late_events_still_ignored(
    settings: ProgressSettings, publisher: EventProducer
) -> None:
    ends = [{}, {"ending": "failed"}, {"ending": "cancelled"}]
    finished = [run_events(f"m-{i}", **ends[i % 3]) for i in range(FINISHED)]
    still_running = run_events("m-running")
    half = len(still_running) // 2
    published = sum([await publish(publisher, run) for run in finished])
    published += await publish(publisher, still_running[:half])
    done_ids = {run[0][1].task_id for run in finished}

    folds = aiter(running_fold(settings))
    fold = await anext(folds)
    await wait_until(
        lambda: held(fold) == ({"m-running"}, done_ids),
        timeout=60,
        what="finished tasks evicted to markers, the running one kept",
    )

    # a late progress event (new id) and a redelivered terminal event of an evicted task
    late_task = finished[0]
    late = late_task[0][1].caused(
        StageProgressed,
        producer="render-worker",
        stage=Stage.RENDER,
        payload=StageProgressPayload(attempt=1, progress=50.0),
    )
    ignored = metrics.IGNORED_AFTER_TERMINAL._value.get()
    await publisher.send(STAGE_TOPIC[Stage.RENDER], late)
    await publisher.send(*late_task[-1])
    await publish(publisher, still_running[half:])  # the running task goes on meanwhile
    await wait_until(
        lambda: metrics.IGNORED_AFTER_TERMINAL._value.get() - ignored >= 1,
        timeout=60,
        what="the late event counted as ignored",
    )
    await wait_until(lambda: "m-running" in held(fold)[1], timeout=60, what="m-running done")
    await folds.aclose()

    updates = [update for _, _, update in await read_updates(settings)]
    by_task: dict[str, list[dict[str, Any]]] = {}
    for update in updates:
        by_task.setdefault(update["task_id"], []).append(update)
    assert all(u["event_id"] != late.event_id for u in updates)  # the late event changed nothing
    assert by_task["m-0"][-1]["state"]["status"] == "completed"
    assert by_task["m-running"][-1]["state"]["status"] == "completed"
    assert held(fold) == (set(), set())  # lanes closed

    # a restart restores markers (not full states) for finished tasks
    folds = aiter(running_fold(settings))
    fold = await anext(folds)
    await wait_until(lambda: fold.ready, timeout=60, what="lanes restored")
    states, markers = held(fold)
    assert states == set()
    assert markers == done_ids | {"m-running"}
    another = late_task[0][1].caused(
        StageProgressed,
        producer="render-worker",
        stage=Stage.RENDER,
        payload=StageProgressPayload(attempt=1, progress=60.0),
    )
    ignored = metrics.IGNORED_AFTER_TERMINAL._value.get()
    await publisher.send(STAGE_TOPIC[Stage.RENDER], another)
    await wait_until(
        lambda: metrics.IGNORED_AFTER_TERMINAL._value.get() - ignored >= 1,
        timeout=60,
        what="the late event after the restart counted as ignored",
    )
    await folds.aclose()
    assert len(await read_updates(settings)) == len(updates)
    assert published > 0

"""The fold's memory stays bounded (docs/decisions/0025-progress-memory.md): a finished task's
state leaves memory after the grace period, only a marker stays, and a late event of such a
task is still ignored, before and after a restart, on the real broker. `progress.state` follows
(decision 0100): the task's record becomes a marker, and goes once the marker is older than
its retention, counted from when it was written, across restarts."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.support.wait import wait_until
from ytmaker_dev.scenario import run_events
from ytmaker_progress import metrics
from ytmaker_progress.folded import Folded
from ytmaker_progress.positions import is_positions
from ytmaker_progress.records import MARKER_HEADER
from ytmaker_progress.runners.fold import FoldService
from ytmaker_progress.settings import ProgressSettings
from ytmaker_shared.events import StageProgressed, StageProgressPayload
from ytmaker_shared.kafka import EventProducer
from ytmaker_shared.metrics import RECORDS_SKIPPED
from ytmaker_shared.stages import Stage
from ytmaker_shared.topics import STAGE_TOPIC, Topic

from .conftest import publish, read_topic, read_updates

pytestmark = [pytest.mark.kafka]

FINISHED = 12


async def running_fold(
    settings: ProgressSettings, marker_retention_s: float = 3600.0
) -> AsyncIterator[FoldService]:
    fold = FoldService(
        settings.model_copy(
            update={
                "progress_evict_after_s": 0.0,
                "progress_marker_retention_s": marker_retention_s,
            }
        )
    )
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


async def last_state_records(settings: ProgressSettings) -> dict[str, Any]:
    """The last committed `progress.state` record of each task (what compaction keeps)."""
    records = await read_topic(settings, Topic.PROGRESS_STATE)
    return {r.key.decode(): r for r in records if not is_positions(r.headers)}


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

    # each finished task's full state on progress.state gave way to a small marker
    last = await last_state_records(settings)
    assert set(last) == done_ids | {"m-running"}
    for task_id, record in last.items():
        assert (MARKER_HEADER, b"1") in record.headers, task_id
        assert json.loads(record.value) == {"status": by_task[task_id][-1]["state"]["status"]}
    marked_at = max(record.timestamp for record in last.values()) / 1000

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

    # past the markers' retention, counted from their records (not from the restarts), a
    # restore lets them go and deletes the tasks' records
    retention_s = 1.0
    await wait_until(lambda: time.time() - marked_at > retention_s, timeout=10, what="markers aged")
    folds = aiter(running_fold(settings, marker_retention_s=retention_s))
    fold = await anext(folds)
    await wait_until(lambda: fold.ready, timeout=60, what="lanes restored")
    assert held(fold) == (set(), set())
    await folds.aclose()
    last = await last_state_records(settings)
    assert {task_id: record.value for task_id, record in last.items()} == dict.fromkeys(
        done_ids | {"m-running"}
    )


def state_of(fold: FoldService, task_id: str) -> Folded:
    [folded] = [lane.states[task_id] for lane in fold.lanes.values() if task_id in lane.states]
    return folded


def skipped_states(settings: ProgressSettings, reason: str | None = None) -> float:
    """Records of `progress.state` the fold's restores skipped so far (for `reason`)."""
    topic = settings.topics.name(Topic.PROGRESS_STATE)
    return sum(
        sample.value
        for metric in RECORDS_SKIPPED.collect()
        for sample in metric.samples
        if sample.name.endswith("_total")
        and sample.labels.get("topic") == topic
        and reason in (None, sample.labels.get("reason"))
    )


async def test_a_restore_decodes_each_tasks_last_record_and_falls_back_past_a_bad_one(
    settings: ProgressSettings, publisher: EventProducer
) -> None:
    """Only a task's last record on `progress.state` is decoded (decision 0100): a bad record
    that a later state replaced costs nothing; a bad last record is passed over, and the
    task's last good state is restored, as when every record was decoded in order."""
    topic = settings.topics.name(Topic.PROGRESS_STATE)
    run = run_events("s-running")
    half = len(run) // 2
    async with EventProducer(settings, "hostile") as hostile:
        await hostile.kafka.send_and_wait(topic, b"not a state", key=b"s-running")
        await publish(publisher, run[:half])
        folds = aiter(running_fold(settings))
        fold = await anext(folds)
        await wait_until(
            lambda: (
                "s-running" in held(fold)[0] and len(state_of(fold, "s-running").recent_ids) == half
            ),
            timeout=60,
            what="the first half folded",
        )
        await folds.aclose()  # its last checkpoint writes the state after the bad record

        before = skipped_states(settings)
        folds = aiter(running_fold(settings))
        fold = await anext(folds)
        await wait_until(lambda: fold.ready, timeout=60, what="lanes restored")
        restored = state_of(fold, "s-running")
        await folds.aclose()
        assert skipped_states(settings) == before  # the replaced bad record was not decoded

        await hostile.kafka.send_and_wait(topic, b"not a state either", key=b"s-running")
    folds = aiter(running_fold(settings))
    fold = await anext(folds)
    await wait_until(lambda: fold.ready, timeout=60, what="lanes restored")
    assert state_of(fold, "s-running") == restored  # the last good state
    assert skipped_states(settings) == before + 2  # both bad records, read in order
    await publish(publisher, run[half:])
    await wait_until(lambda: "s-running" in held(fold)[1], timeout=60, what="run finished")
    await folds.aclose()
    updates = [update for _, _, update in await read_updates(settings)]
    assert [u["event_id"] for u in updates] == [event.event_id for _, event in run]


async def test_a_restore_takes_a_tasks_state_only_from_its_tasks_lane(
    settings: ProgressSettings, publisher: EventProducer
) -> None:
    """A task's state written to another lane's partition of `progress.state` (a hostile
    writer) was restored as a second state of the task in that lane, and one with an empty key
    as the state of a task without an id (decision 0123)."""
    topic = settings.topics.name(Topic.PROGRESS_STATE)
    run = run_events("s-lane")
    half = len(run) // 2
    await publish(publisher, run[:half])
    folds = aiter(running_fold(settings))
    fold = await anext(folds)
    await wait_until(
        lambda: "s-lane" in held(fold)[0] and len(state_of(fold, "s-lane").recent_ids) == half,
        timeout=60,
        what="the first half folded",
    )
    await folds.aclose()  # its last checkpoint writes the task's state
    real = (await last_state_records(settings))["s-lane"]
    wrong = (real.partition + 1) % settings.topic_partitions
    headers = list(real.headers)
    misplaced, keyless = (
        skipped_states(settings, "wrong_partition"),
        skipped_states(settings, "invalid_record"),
    )
    async with EventProducer(settings, "hostile") as hostile:
        # (a compacted topic refuses a record without a key; an empty one it takes)
        for key, partition in ((b"s-lane", wrong), (b"", real.partition), (b"", wrong)):
            await hostile.kafka.send_and_wait(
                topic, real.value, key=key, partition=partition, headers=headers
            )

    folds = aiter(running_fold(settings))
    fold = await anext(folds)
    await wait_until(lambda: fold.ready, timeout=60, what="lanes restored")
    holders = [n for n, lane in fold.lanes.items() if "s-lane" in lane.states]
    assert holders == [real.partition]
    assert all(set(lane.states) <= {"s-lane"} for lane in fold.lanes.values())
    assert skipped_states(settings, "wrong_partition") == misplaced + 1
    assert skipped_states(settings, "invalid_record") == keyless + 2
    await publish(publisher, run[half:])
    await wait_until(lambda: "s-lane" in held(fold)[1], timeout=60, what="run finished")
    await folds.aclose()

"""Exactly-once effect under SIGKILL (DESIGN §4, §6): the fold is killed at random points while
a stream of runs is published, restarted each time, and at the end `progress.updates` holds,
for every task, each update once, in order, with nothing skipped.

"Nothing skipped" is checked as a chain: an event that publishes no update changes nothing a
client sees, so every update's state must be exactly `apply(previous update's state, its own
event)`; the first must be `apply(None, its event)`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from tests.support.wait import wait_until_async
from ytmaker_dev.scenario import run_events
from ytmaker_progress.fold import Folded, apply
from ytmaker_progress.positions import decode_checkpoint, is_positions, positions_key
from ytmaker_progress.records import decode_marker, is_marker
from ytmaker_progress.runners.fold import FoldService
from ytmaker_progress.settings import ProgressSettings
from ytmaker_shared.events import Event
from ytmaker_shared.kafka import EventProducer
from ytmaker_shared.progress import TaskState
from ytmaker_shared.stages import Stage
from ytmaker_shared.topics import PIPELINE_TOPICS, Topic

from .conftest import read_topic, read_updates, wait_settled

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(600)]

KILLS = int(os.environ.get("YTMAKER_TEST_KILLS", "6"))
TASKS = 24


def _endings(i: int) -> dict[str, Any]:
    return [
        {},
        {"ending": "failed"},
        {"ending": "cancelled"},
        {"retry_stage": Stage.RENDER, "pause": True},
    ][i % 4]


async def _start(settings: ProgressSettings, log: Path, **extra: str) -> asyncio.subprocess.Process:
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "YTMAKER_TOPIC_PREFIX": settings.topic_prefix,
        "YTMAKER_PROGRESS_RUN_API": "false",
        "YTMAKER_PROGRESS_RUN_ETA": "false",  # the chain below refolds pipeline events only
        "YTMAKER_PROGRESS_SESSION_TIMEOUT_MS": "6000",
        "YTMAKER_PROGRESS_FOLD_BATCH_SIZE": "50",
        # checkpoints handed over several times a second: kills land while one commits and
        # the lane's other producer writes (decision 0096)
        "YTMAKER_PROGRESS_CHECKPOINT_INTERVAL_MS": "250",
        # the group's offsets stay unwritten: the fold must resume from its own positions
        "YTMAKER_PROGRESS_REPORT_POSITIONS_S": "86400",
        "YTMAKER_HEALTH_PORT": "0",
        "YTMAKER_LOG_LEVEL": "INFO",
        **extra,
    }
    with log.open("ab") as out:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "ytmaker_progress", env=env, stderr=out
        )


async def test_sigkill_at_random_points_loses_and_duplicates_nothing(
    settings: ProgressSettings, publisher: EventProducer, tmp_path: Path
) -> None:
    log = tmp_path / "fold.log"
    rng = random.Random(int(os.environ.get("YTMAKER_TEST_SEED", "4")))
    runs = {f"k-{i}": run_events(f"k-{i}", steps=4, **_endings(i)) for i in range(TASKS)}
    publishing = asyncio.create_task(_stream(publisher, runs, rng))
    for _ in range(KILLS):
        process = await _start(settings, log)
        await asyncio.sleep(rng.uniform(1.0, 9.0))
        process.send_signal(signal.SIGKILL)
        await process.wait()
    await publishing
    before_last = log.stat().st_size if log.exists() else 0
    last = await _start(settings, log)
    try:
        with _log_shown_on_failure(log):
            await _wait_all_finished(settings, set(runs), last)
            # every lane restored by the last process (a killed member may hold half of them
            # until its session expires), so that each checkpoints what it adopted as it stops
            await _wait_all_lanes(log, before_last, settings.topic_partitions)
    finally:
        await _stop(last)

    by_task = _assert_each_update_once_in_order(await read_updates(settings), runs)
    # the compacted state topic agrees with the last update of each task (once the last
    # checkpoints' commit markers are written: until then read_committed stops before them)
    await wait_settled(settings, Topic.PROGRESS_STATE)
    states = await _latest_states(settings)
    for task, items in by_task.items():
        last = TaskState.model_validate(items[-1][2]["state"])
        assert states[task] in (last, last.status.value)  # the state, or its marker (0100)
    # and each lane's last checkpoint, written as it stopped, stands at the end of its inputs
    ends = await _input_ends(settings)
    positions = await _latest_positions(settings)
    assert positions == {tp: end for tp, end in ends.items() if tp in positions}
    assert {tp for tp, end in ends.items() if end > 0} <= set(positions)


async def test_states_adopted_after_a_kill_are_checkpointed_without_new_events(
    settings: ProgressSettings, publisher: EventProducer, tmp_path: Path
) -> None:
    """A fold killed after writing a run's updates and before its checkpoint: the next owner
    adopts those updates, and its checkpoint writes their states to `progress.state` even
    though no event of the lane comes any more."""
    run = run_events("adopted-1", steps=3)
    slow = {"YTMAKER_PROGRESS_CHECKPOINT_INTERVAL_MS": "600000"}
    first = await _start(settings, tmp_path / "fold.log", **slow)
    try:
        for topic, event in run:
            await publisher.send(topic, event)
        updates = await read_updates(settings, until=len(run), timeout=60)
    finally:
        first.kill()
        await first.wait()
    assert "adopted-1" not in await _latest_states(settings)  # never checkpointed

    last_state = TaskState.model_validate(updates[-1][2]["state"])
    second = FoldService(settings)
    stopping = asyncio.Event()
    folding = asyncio.create_task(second.run(stopping))
    try:

        async def checkpointed() -> bool:
            return (await _latest_states(settings)).get("adopted-1") == last_state

        await wait_until_async(checkpointed, timeout=30, what="the adopted state checkpointed")
    finally:
        stopping.set()
        await folding
    assert len(await read_updates(settings, until=len(run), timeout=10)) == len(run)


async def test_a_lane_fenced_while_still_owned_recovers_without_repeats(
    settings: ProgressSettings, publisher: EventProducer, tmp_path: Path
) -> None:
    """A zombie takes a lane's transactional id while the fold still owns the lane: the
    lane's transaction fails, the polling loop recovers it (fresh producers, its state and
    positions from the log, its inputs sought back) and it folds on. What the poll that found
    it failed brought predates that seek: folding it too would repeat updates."""
    log = tmp_path / "fold.log"
    rng = random.Random(int(os.environ.get("YTMAKER_TEST_SEED", "4")))
    runs = {f"z-{i}": run_events(f"z-{i}", steps=4, **_endings(i)) for i in range(TASKS)}
    process = await _start(settings, log)
    try:
        publishing = asyncio.create_task(_stream(publisher, runs, rng))
        fences = 0
        while not publishing.done():
            await asyncio.sleep(rng.uniform(0.5, 1.5))
            lane = rng.randrange(settings.topic_partitions)
            await _fence(settings, settings.transactional_ids(lane)[fences % 2])
            fences += 1
        await publishing
        with _log_shown_on_failure(log):
            await _wait_all_finished(settings, set(runs), process)
    finally:
        await _stop(process)
    assert process.returncode == 0, log.read_text()[-5000:]
    records = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    said = [r["msg"] for r in records]
    assert "lane recovered" in said, f"no lane recovered after {fences} fences"
    assert "records behind the lane's positions skipped" not in said  # none folded twice
    ours = [r for r in records if r["level"] == "ERROR" and r["logger"].startswith("ytmaker")]
    assert not ours
    _assert_each_update_once_in_order(await read_updates(settings), runs)


async def _stop(fold: asyncio.subprocess.Process) -> None:
    """Stop the fold as an orchestrator does (SIGTERM), unless it has exited already (then
    the test's own assertion says so, not a `ProcessLookupError`)."""
    if fold.returncode is None:
        fold.send_signal(signal.SIGTERM)
    await asyncio.wait_for(fold.wait(), 60)


@contextlib.contextmanager
def _log_shown_on_failure(log: Path) -> Iterator[None]:
    """A wait that fails prints the end of the fold's log first."""
    try:
        yield
    except AssertionError:
        print(log.read_text()[-20000:])
        raise


async def _fence(settings: ProgressSettings, transactional_id: str) -> None:
    """What a zombie does: a producer of the same transactional id says hello (InitProducerId),
    which aborts the open transaction and fences the current producer."""
    zombie = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers, transactional_id=transactional_id
    )
    await zombie.start()
    await zombie.stop()


async def _stream(
    publisher: EventProducer, runs: dict[str, list[tuple[Topic, Event]]], rng: random.Random
) -> None:
    """The runs interleaved, each in its own order, paced so that kills and fences fall
    inside."""
    queues = {task: list(run) for task, run in runs.items()}
    while queues:
        task = rng.choice(sorted(queues))
        topic, event = queues[task].pop(0)
        await publisher.send(topic, event)
        if not queues[task]:
            del queues[task]
        await asyncio.sleep(0.01)


def _assert_each_update_once_in_order(
    records: list[tuple[int, int, dict[str, Any]]], runs: dict[str, list[tuple[Topic, Event]]]
) -> dict[str, list[tuple[int, int, dict[str, Any]]]]:
    """Every run's updates in one partition, each once, in order, nothing skipped (the chain
    of the module's docstring), ending in the run's final status. Returns them per task."""
    events: dict[str, Event] = {e.event_id: e for run in runs.values() for _, e in run}
    by_task: dict[str, list[tuple[int, int, dict[str, Any]]]] = {}
    for partition, offset, update in records:
        by_task.setdefault(update["task_id"], []).append((partition, offset, update))
    assert set(by_task) == set(runs)
    for task, items in by_task.items():
        assert len({p for p, _, _ in items}) == 1, f"{task}: updates in several partitions"
        offsets = [o for _, o, _ in items]
        assert offsets == sorted(offsets)
        event_ids = [u["event_id"] for _, _, u in items]
        assert len(event_ids) == len(set(event_ids)), f"{task}: a duplicate update"
        state: Folded | None = None
        for _, _, update in items:
            event = events[update["event_id"]]
            folded, out = apply(state, event)
            assert len(out) == 1, f"{task}: {event.type} published nothing when folded again"
            assert out[0].model_dump(mode="json") == update, f"{task}: a skipped update"
            state = Folded(task=folded.task)
        assert state is not None
        status = {"task.completed": "completed", "task.failed": "failed"}
        assert state.task.status == status.get(runs[task][-1][1].type, "cancelled")
        if state.task.status == "completed":
            assert state.task.progress == 100
    return by_task


async def _latest_positions(settings: ProgressSettings) -> dict[TopicPartition, int]:
    """Every lane's last committed checkpoint's positions, merged (lanes have disjoint
    inputs)."""
    merged: dict[TopicPartition, int] = {}
    for record in await read_topic(settings, Topic.PROGRESS_STATE):
        if is_positions(record.headers):
            assert record.key == positions_key(record.partition)
            checkpoint = decode_checkpoint(record.value, settings.topics, record.partition)
            merged |= checkpoint.positions
    return merged


async def _input_ends(settings: ProgressSettings) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await consumer.start()
    try:
        names = [settings.topics.name(t) for t in (*PIPELINE_TOPICS, Topic.PROGRESS_ETA)]
        tps = [TopicPartition(name, p) for name in names for p in range(settings.topic_partitions)]
        ends: dict[TopicPartition, int] = await consumer.end_offsets(tps)
        return ends
    finally:
        await consumer.stop()


async def _wait_all_lanes(log: Path, offset: int, partitions: int) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 120
    while True:
        with log.open("rb") as f:
            f.seek(offset)
            lines = f.read().decode(errors="replace").splitlines()
        for line in lines:
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if record.get("msg") == "lanes restored" and len(record["lanes"]) == partitions:
                    return
        if loop.time() > deadline:
            raise AssertionError("the last fold process never restored every lane")
        await asyncio.sleep(0.25)


async def _wait_all_finished(
    settings: ProgressSettings, tasks: set[str], fold: asyncio.subprocess.Process
) -> None:
    """Until every task's final update is on the log; fails at once if `fold` exits."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 240
    while True:
        if fold.returncode is not None:
            raise AssertionError(f"the fold exited ({fold.returncode}) before the runs finished")
        finished = {
            u["task_id"]
            for _, _, u in await read_updates(settings)
            if u["state"]["status"] in ("completed", "failed", "cancelled")
        }
        if finished >= tasks:
            return
        if loop.time() > deadline:
            raise AssertionError(f"not finished: {sorted(tasks - finished)}")
        await asyncio.sleep(1)


async def _latest_states(settings: ProgressSettings) -> dict[str, TaskState | str]:
    """Each task's last record on `progress.state`: its state, or the final status of a
    finished task's marker (decision 0100)."""
    latest: dict[str, TaskState | str] = {}
    for r in await read_topic(settings, Topic.PROGRESS_STATE):
        if is_positions(r.headers):
            continue
        if is_marker(r.headers):
            latest[r.key.decode()] = decode_marker(r.value)
        else:
            latest[r.key.decode()] = TaskState.model_validate(json.loads(r.value))
    return latest

"""Rebalances while lanes hold open transactions (decision 0083): a second fold process joins
the group, then the first one's session expires (SIGSTOP) while its lanes' transactions are
open, the second takes every lane over and fences the first one's producers, and the first
comes back (SIGCONT). Neither process dies, and `progress.updates` and a read model rebuilt
from it hold, for every task, each update once, in order, with nothing skipped (the chain of
`test_crash.py`: every update is `apply(previous update's state, its own event)`).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.wait import wait_until
from ytmaker_dev.scenario import run_events
from ytmaker_progress.fold import Folded, apply
from ytmaker_progress.rebuild import rebuild
from ytmaker_progress.settings import ProgressSettings
from ytmaker_shared.events import Event
from ytmaker_shared.kafka import EventProducer
from ytmaker_shared.topics import Topic

from .conftest import open_transactions, read_updates

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(600)]

TASKS = 24
SESSION_TIMEOUT_MS = 6000


async def _start(settings: ProgressSettings, log: Path) -> asyncio.subprocess.Process:
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "YTMAKER_TOPIC_PREFIX": settings.topic_prefix,
        "YTMAKER_PROGRESS_SESSION_TIMEOUT_MS": str(SESSION_TIMEOUT_MS),
        "YTMAKER_PROGRESS_FOLD_BATCH_SIZE": "50",
        # transactions stay open long enough for every rebalance below to meet them
        "YTMAKER_PROGRESS_CHECKPOINT_INTERVAL_MS": "20000",
        "YTMAKER_PROGRESS_REPORT_POSITIONS_S": "86400",
        "YTMAKER_HEALTH_PORT": "0",
        "YTMAKER_LOG_LEVEL": "INFO",
    }
    with log.open("ab") as out:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "ytmaker_progress", "fold", env=env, stderr=out
        )


def _lines(log: Path, msg: str) -> list[dict[str, Any]]:
    out = []
    for line in log.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("msg") == msg:
            out.append(record)
    return out


async def _wait_for(what: str, check: Any, timeout: float = 60) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.25)


async def test_rebalances_during_open_transactions_lose_and_repeat_nothing(
    settings: ProgressSettings, publisher: EventProducer, tmp_path: Path
) -> None:
    rng = random.Random(11)
    runs = {f"r-{i}": run_events(f"r-{i}", steps=6) for i in range(TASKS)}
    events: dict[str, Event] = {e.event_id: e for run in runs.values() for _, e in run}
    log_a, log_b = tmp_path / "fold-a.log", tmp_path / "fold-b.log"

    async def stream() -> None:  # runs interleaved, each in its own order, over ~30 s
        queues = {task: list(run) for task, run in runs.items()}
        while queues:
            task = rng.choice(sorted(queues))
            await publisher.send(*queues[task].pop(0))
            if not queues[task]:
                del queues[task]
            await asyncio.sleep(0.04)

    a = await _start(settings, log_a)
    b: asyncio.subprocess.Process | None = None
    publishing = asyncio.create_task(stream())
    try:
        # 1. A folds alone, its lanes' transactions open; B joins: A's lanes are revoked
        await wait_until(lambda: _lines(log_a, "lanes restored"), timeout=60, what="A's lanes")
        await _wait_for("an open transaction", lambda: _has_open(settings))
        b = await _start(settings, log_b)
        await wait_until(lambda: _lines(log_b, "lanes restored"), timeout=60, what="B's lanes")
        await wait_until(
            lambda: len(_lines(log_a, "lanes restored")) >= 2, timeout=60, what="A rejoined"
        )
        # 2. A's session expires while its lanes' transactions are open: B takes them over
        await _wait_for("an open transaction", lambda: _has_open(settings))
        a.send_signal(signal.SIGSTOP)
        try:
            await wait_until(
                lambda: any(
                    len(r["lanes"]) == settings.topic_partitions
                    for r in _lines(log_b, "lanes restored")
                ),
                timeout=60,
                what="B owning every lane",
            )
        finally:
            a.send_signal(signal.SIGCONT)
        # 3. A comes back fenced: it leaves its lanes to the rebalance and rejoins, alive
        await wait_until(
            lambda: a.returncode is not None or len(_lines(log_a, "lanes restored")) >= 3,
            timeout=90,
            what="A back in the group",
        )
        assert a.returncode is None, f"A died: {log_a.read_text()[-3000:]}"
        await publishing
        await _wait_all_finished(settings, set(runs))
        assert a.returncode is None, log_a.read_text()[-5000:]
        assert b.returncode is None, log_b.read_text()[-5000:]
    finally:
        publishing.cancel()
        for process in (a, b):
            if process is not None and process.returncode is None:
                process.send_signal(signal.SIGCONT)
                process.send_signal(signal.SIGTERM)
                await asyncio.wait_for(process.wait(), 60)

    # every update once, in order, nothing skipped
    by_task: dict[str, list[tuple[int, int, dict[str, Any]]]] = {}
    for partition, offset, update in await read_updates(settings):
        by_task.setdefault(update["task_id"], []).append((partition, offset, update))
    assert set(by_task) == set(runs)
    for task, items in by_task.items():
        event_ids = [u["event_id"] for _, _, u in items]
        assert len(event_ids) == len(set(event_ids)), f"{task}: a duplicate update"
        state: Folded | None = None
        for _, _, update in items:
            folded, out = apply(state, events[update["event_id"]])
            assert len(out) == 1, f"{task}: an update no event makes"
            assert out[0].model_dump(mode="json") == update, f"{task}: a skipped update"
            state = Folded(task=folded.task)
        assert state is not None and state.task.status == "completed"
    # and the read model rebuilt from the log stores exactly those updates
    store, stored, _ = await rebuild(settings, f"sqlite:///{tmp_path / 'rebuilt.db'}")
    try:
        assert stored == sum(len(items) for items in by_task.values())
        for task, items in by_task.items():
            history = await asyncio.to_thread(store.history, task)
            assert [h["offset"] for h in history] == [o for _, o, _ in items], task
    finally:
        store.close()
    # A really was fenced with a transaction open, and took it as part of a rebalance
    assert _lines(log_a, "lane fenced"), "A was never fenced: the test missed its point"
    assert "FoldFatal" not in log_a.read_text() + log_b.read_text()


async def _has_open(settings: ProgressSettings) -> bool:
    """A lane transaction is open on `progress.updates`."""
    return bool(await open_transactions(settings, Topic.PROGRESS_UPDATES))


async def _wait_all_finished(settings: ProgressSettings, tasks: set[str]) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 180
    while True:
        finished = {
            u["task_id"]
            for _, _, u in await read_updates(settings)
            if u["state"]["status"] == "completed"
        }
        if finished >= tasks:
            return
        if loop.time() > deadline:
            raise AssertionError(f"not finished: {sorted(tasks - finished)}")
        await asyncio.sleep(1)

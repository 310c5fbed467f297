"""The fold catching up with a history backlog, as `bench/delivery.py --history` makes it, and
the rebuild of the read model from what it folded (issue 11; decision 0083).

    KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:19092 .venv/bin/python -m bench.fold_backlog \
        [--tasks 10000] [--updates 100] [--live] [--restart] [--keep] [--no-rebuild]

Makes a fresh topic set (its own prefix), produces `--tasks` finished runs of `--updates`
events each into the pipeline topics with the delivery benchmark's own history producer
(`bench/harness/history.py`: every event is one visible change, so one update), and runs the
fold as `make run` runs it (`python -m ytmaker_progress fold`, default settings) in a process
of its own. By default the backlog is produced first and the fold started after (pure catch-up);
`--live` starts the fold first and produces while it folds (the delivery benchmark's order).
`--restart` then stops the fold and starts it again over the history: how long its restore
takes, and whether it keeps its place in the group meanwhile (watched for 30 s).

Prints, as JSON: the produce time, the fold's catch-up time and events/s (first to last
update, and the best 10-s window), its CPU seconds, whether it stayed up (and any fatal,
fencing or group-membership lines in its log), then the time to rebuild a SQLite read model
from the updates it wrote. Deletes the topics unless `--keep`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import signal
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from bench.harness.history import fill
from bench.harness.publishers import YtmakerPublisher
from ytmaker_progress.rebuild import rebuild
from ytmaker_progress.settings import ProgressSettings
from ytmaker_shared.kafka import delete_topics, ensure_topics
from ytmaker_shared.topics import Topic

#: Lines of the fold's log that tell of trouble in its group or its transactions.
TROUBLE = re.compile(
    r"FoldFatal|ProducerFenced|fenced|UnknownMemberId|member_id was not recognized|"
    r"Heartbeat session expired|"
    r"generation id is not|rebalanc|Traceback|lane stopped|recover",
    re.IGNORECASE,
)


def read_log(path: Path) -> str:
    return path.read_text(errors="replace")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a running process (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def updates_written(consumer: AIOKafkaConsumer, tps: list[TopicPartition]) -> int:
    """Records in `progress.updates` (the high watermarks: the fold's readers read
    uncommitted), minus the transaction markers, which are few (one per checkpoint)."""
    ends = await consumer.end_offsets(tps)
    return sum(ends.values())


async def start_fold(prefix: str, log: Path) -> asyncio.subprocess.Process:
    env = {**os.environ, "YTMAKER_TOPIC_PREFIX": prefix, "YTMAKER_HEALTH_PORT": "0"}
    with log.open("ab") as out:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "ytmaker_progress", "fold", env=env, stdout=out, stderr=out
        )


async def watch(
    fold: asyncio.subprocess.Process, consumer: AIOKafkaConsumer, tps: list[TopicPartition],
    expected: int, timeout: float,
) -> dict[str, Any]:  # fmt: skip
    """Sample the updates written every second until `expected` or the fold dies."""
    samples: list[tuple[float, int]] = []
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        n = await updates_written(consumer, tps)
        samples.append((time.monotonic(), n))
        if fold.returncode is not None:
            break
        if n >= expected and len(samples) > 3 and samples[-4][1] == n:
            break  # everything folded (the count includes a few transaction markers)
        await asyncio.sleep(1.0)
    first = next(((t, n) for t, n in samples if n > 0), samples[-1])
    last = next((t, n) for t, n in samples if n == samples[-1][1])
    best = 0.0
    for i, (t0, n0) in enumerate(samples):
        for t1, n1 in samples[i + 1 :]:
            if t1 - t0 >= 10:
                best = max(best, (n1 - n0) / (t1 - t0))
                break
    span = last[0] - first[0]
    return {
        "updates_written": last[1],
        "caught_up": last[1] >= expected,
        "first_to_last_update_s": round(span, 1),
        "events_per_s": round((last[1] - first[1]) / span) if span > 0 else None,
        "best_10s_events_per_s": round(best),
    }


async def restart(prefix: str, log: Path) -> dict[str, Any]:
    """Start the fold again over the history: seconds until its lanes are restored, and the
    trouble lines of its first 30 s after that."""
    started = time.monotonic()
    fold = await start_fold(prefix, log)
    restored = None
    try:
        while time.monotonic() - started < 600 and fold.returncode is None:
            if restored is None and "lanes restored" in read_log(log):
                restored = time.monotonic() - started
            if restored is not None and time.monotonic() - started > restored + 30:
                break
            await asyncio.sleep(0.5)
        text = read_log(log)
    finally:
        if fold.returncode is None:
            fold.send_signal(signal.SIGTERM)
            await asyncio.wait_for(fold.wait(), 120)
    return {
        "lanes_restored_after_s": None if restored is None else round(restored, 1),
        "times_restored": text.count('"lanes restored"'),
        "still_running_after_30s": fold.returncode in (None, 0, -signal.SIGTERM),
        "log_trouble": [line[:300] for line in text.splitlines() if TROUBLE.search(line)][:20],
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--updates", type=int, default=100, help="events (updates) per run")
    parser.add_argument("--live", action="store_true", help="start the fold before producing")
    parser.add_argument("--restart", action="store_true", help="then restart it over the history")
    parser.add_argument("--keep", action="store_true", help="keep the topics")
    parser.add_argument("--no-rebuild", action="store_true")
    parser.add_argument("--timeout", type=float, default=1800)
    args = parser.parse_args()

    prefix = f"bench-fold-{uuid.uuid4().hex[:8]}."
    os.environ["YTMAKER_TOPIC_PREFIX"] = prefix
    settings = ProgressSettings()
    await ensure_topics(settings)
    work = Path(tempfile.mkdtemp(prefix="fold-backlog-"))
    log = work / "fold.log"
    result: dict[str, Any] = {"prefix": prefix, "tasks": args.tasks, "live": args.live}
    expected = args.tasks * args.updates
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await consumer.start()
    updates = settings.topics.name(Topic.PROGRESS_UPDATES)
    tps = [TopicPartition(updates, p) for p in range(settings.topic_partitions)]
    fold: asyncio.subprocess.Process | None = None
    publisher = YtmakerPublisher()
    await publisher.start()
    try:
        if args.live:
            fold = await start_fold(prefix, log)
        producing = asyncio.create_task(fill(publisher, "bench-fold", args.tasks, args.updates))
        if args.live:
            assert fold is not None
            fold_started = time.monotonic()
            watching = asyncio.create_task(watch(fold, consumer, tps, expected, args.timeout))
            result["produced"] = await producing
            result["fold"] = await watching
        else:
            result["produced"] = await producing
            fold = await start_fold(prefix, log)
            fold_started = time.monotonic()
            result["fold"] = await watch(fold, consumer, tps, expected, args.timeout)
        result["fold"]["since_fold_start_s"] = round(time.monotonic() - fold_started, 1)
        result["fold"]["cpu_s"] = (
            round(cpu_seconds(fold.pid), 1) if fold.returncode is None else None
        )
        result["fold"]["still_running"] = fold.returncode is None
        result["fold"]["log_trouble"] = [
            line[:300]
            for line in log.read_text(errors="replace").splitlines()
            if TROUBLE.search(line)
        ][:40]
        if fold.returncode is None:
            fold.send_signal(signal.SIGTERM)
            await asyncio.wait_for(fold.wait(), 120)
        if args.restart:
            result["restart"] = await restart(prefix, work / "fold-restart.log")
        if not args.no_rebuild:
            store, stored, seconds = await rebuild(settings, f"sqlite:///{work / 'rebuilt.db'}")
            store.close()
            result["rebuild"] = {
                "updates": stored,
                "seconds": round(seconds, 1),
                "updates_per_s": round(stored / seconds),
            }
    finally:
        if fold is not None and fold.returncode is None:
            fold.kill()
            await fold.wait()
        await publisher.stop()
        await consumer.stop()
        if not args.keep:
            await delete_topics(settings)
    result["fold_log"] = str(log)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())

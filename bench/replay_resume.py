"""Resuming after many missed updates (issue 10, "Replay of any length"): the time from a
client's reconnect to the arrival of the last update it missed, for 1k, 10k and 100k missed
updates of one task while 1,000 other tasks write to the same partition.

    KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:19092 .venv/bin/python bench/replay_resume.py \
        [--missed 1000 10000 100000] [--others 1000] [--runs 1]

The gateway runs as its own process, started as `make run` starts it (`python -m
ytmaker_gateway`, anonymous development access, topics with one partition per core; this
process serves the fake of the progress service's API that it asks who owns the task). For
each size: a client subscribes to the task and sees one update (offset L), disconnects; N
updates of the task are written, each followed by one update of one of the 1,000 other tasks
(round robin, all in the task's partition), so the replay has 2·N records to get through;
once the gateway has read them all (a second client watches the last of the others), the
client reconnects with `since: L`. Printed: the time to the last missed update, that every
missed update came exactly once and in order, and the gateway's resident memory before and
after (the replay is paged: it must not grow with N). The target is 10k missed in ≤ 0.5 s.

The gateway keeps recent updates in memory (decision 0040), so a reconnect to a gateway that
saw the updates is served from there as far as they are kept; `--gateway-env
YTMAKER_CACHE_UPDATES_PER_TASK=0` measures the other case, every update read from Kafka (a
gateway started after the updates were written).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import orjson
from aiokafka import AIOKafkaProducer
from websockets.asyncio.client import ClientConnection, connect

from ytmaker_gateway.auth import ANONYMOUS_USER
from ytmaker_gateway.settings import GatewaySettings
from ytmaker_shared.events import new_event_id
from ytmaker_shared.kafka import delete_topics, ensure_topics
from ytmaker_shared.settings import single_host_partitions
from ytmaker_shared.topics import Topic, task_partition

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the gateway's test doubles (tests/support/gateway.py)

from bench.harness.stacks import spawn, stop, wait_http  # noqa: E402
from tests.support.gateway import (  # noqa: E402
    FakeProgress,
    make_state,
    make_update,
    start_server,
)
from ytmaker_dev.layout import process  # noqa: E402
from ytmaker_dev.ports import free_port  # noqa: E402

OWNER = ANONYMOUS_USER  # make run's page acts as the development user


async def recv(ws: ClientConnection, timeout: float = 60) -> dict[str, object]:
    """The next message (orjson: the measuring client must not be what is measured)."""
    async with asyncio.timeout(timeout):
        message: dict[str, object] = orjson.loads(await ws.recv(decode=False))
    return message


async def subscribe(ws: ClientConnection, task_id: str, since: int | None) -> None:
    await ws.send(json.dumps({"action": "subscribe", "task_id": task_id, "since": since}))


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def same_partition(task_id: str, partitions: int, count: int) -> list[str]:
    """`count` new task ids whose updates land in `task_id`'s partition."""
    wanted = task_partition(task_id, partitions)
    found: list[str] = []
    while len(found) < count:
        candidate = new_event_id()
        if task_partition(candidate, partitions) == wanted:
            found.append(candidate)
    return found


class Writer:
    """Writes updates as the progress service would (keyed by task, acks=all)."""

    def __init__(self, settings: GatewaySettings, fake: FakeProgress) -> None:
        self.topic = settings.topics.name(Topic.PROGRESS_UPDATES)
        self.fake = fake
        self.producer = AIOKafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap_servers,
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
            max_batch_size=256 * 1024,
        )
        self.n = 0

    async def write(self, task_id: str, *, wait: bool = True) -> asyncio.Future[object]:
        self.n += 1
        update = make_update(task_id, owner=OWNER, n=self.n, progress=min(99.0, self.n / 2000))
        sent: asyncio.Future[object] = await self.producer.send(
            self.topic, update.model_dump_json().encode(), key=task_id.encode()
        )
        if wait:
            await sent
        return sent


async def one_size(
    ws_url: str, writer: Writer, task_id: str, others: list[str], missed: int, pid: int
) -> tuple[float, float, bool, float, float]:
    """(seconds from the reconnect to the last missed update, the gateway's CPU seconds in
    that time, whether exactly the missed updates came, once each, in order, the gateway's
    resident MiB before the reconnect and after the replay)."""
    writer.fake.put_task(make_state(task_id, owner=OWNER))
    # The client sees the task's first update, then loses its connection.
    ws = await connect(f"{ws_url}/api/v1/ws", max_size=None, max_queue=None)
    await recv(ws)  # connected
    await subscribe(ws, task_id, -1)
    await writer.write(task_id)
    while (message := await recv(ws))["type"] != "progress":
        pass
    last_seen = int(message["offset"])  # type: ignore[call-overload]
    await ws.close()
    # While it is away: N updates of the task, each followed by one of another task.
    pending = []
    for i in range(missed):
        pending.append(await writer.write(task_id, wait=False))
        pending.append(await writer.write(others[i % len(others)], wait=False))
    written = [int(meta.offset) for meta in await asyncio.gather(*pending[::2])]  # type: ignore[attr-defined]
    last_other = int((await pending[-1]).offset)  # type: ignore[attr-defined]
    writer.fake.put_task(make_state(task_id, owner=OWNER, offset=written[-1]))
    # Wait until the gateway has read them all: a watcher of the last other task sees it.
    async with connect(f"{ws_url}/api/v1/ws", max_size=None) as watcher:
        await recv(watcher)
        await subscribe(watcher, others[(missed - 1) % len(others)], last_other - 1)
        while (seen := await recv(watcher)).get("offset") != last_other or seen["type"] not in (
            "progress",
            "status",
        ):
            pass
    # The reconnect.
    rss_before = rss_mib(pid)
    cpu = cpu_seconds(pid)
    started = time.perf_counter()
    ws = await connect(f"{ws_url}/api/v1/ws", max_size=None, max_queue=None)
    await recv(ws)
    await subscribe(ws, task_id, last_seen)
    got: list[int] = []
    while not got or got[-1] != written[-1]:
        message = await recv(ws)
        if message["type"] in ("progress", "status", "error") and message["task_id"] == task_id:
            got.append(int(message["offset"]))  # type: ignore[call-overload]
    elapsed = time.perf_counter() - started
    cpu = cpu_seconds(pid) - cpu
    rss_after = rss_mib(pid)
    await ws.close()
    return elapsed, cpu, got == written, rss_before, rss_after


async def run_once(args: argparse.Namespace, bootstrap: str, tmp: Path) -> None:
    prefix = f"bench-replay-{uuid.uuid4().hex[:8]}."
    settings = GatewaySettings(
        kafka_bootstrap_servers=bootstrap, topic_prefix=prefix, topic_partitions=args.partitions
    )
    await ensure_topics(settings)
    fake = FakeProgress()
    fake_server = await start_server(fake.app())
    port = free_port()
    env = {  # as scripts/run_local.py starts the gateway
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "YTMAKER_TOPIC_PREFIX": prefix,
        "YTMAKER_TOPIC_PARTITIONS": str(args.partitions),
        "YTMAKER_ARTIFACT_DIR": str(tmp / "artifacts"),
        "YTMAKER_DEV_ALLOW_ANONYMOUS": "true",
        "YTMAKER_JWT_SECRET": secrets.token_urlsafe(32),
        "YTMAKER_PORT": str(port),
        "YTMAKER_PROGRESS_URL": fake_server.base,
        "YTMAKER_LOG_LEVEL": "WARNING",
        **dict(kv.split("=", 1) for kv in args.gateway_env),
    }
    log = tmp / "gateway.log"
    gateway = await spawn(*process("gateway").command(), env=env, log=log)
    writer = Writer(settings, fake)
    try:
        await wait_http(f"http://127.0.0.1:{port}/readyz", gateway, "the gateway", log)
        await writer.producer.start()
        for missed in args.missed:
            task_id = new_event_id()
            others = same_partition(task_id, args.partitions, args.others)
            for other in others:
                fake.put_task(make_state(other, owner=OWNER))
            load = os.getloadavg()[0]
            elapsed, cpu, exact, before, after = await one_size(
                f"ws://127.0.0.1:{port}", writer, task_id, others, missed, gateway.pid
            )
            print(
                f"missed {missed:>7,}: last missed update after {elapsed * 1000:8.1f} ms "
                f"(gateway CPU {cpu * 1000:.0f} ms); exactly once, in order: {exact}; "
                f"gateway RSS {before:.0f} → {after:.0f} MiB during the replay; "
                f"load {load:.2f} → {os.getloadavg()[0]:.2f}",
                flush=True,
            )
    finally:
        await writer.producer.stop()
        await stop(gateway)
        await fake_server.stop()
        await delete_topics(settings)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--missed", type=int, nargs="+", default=[1000, 10_000, 100_000])
    parser.add_argument("--others", type=int, default=1000, help="other tasks in the partition")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument(
        "--partitions",
        type=int,
        default=single_host_partitions(),
        help="of progress.updates; default: as `make run` on this machine",
    )
    parser.add_argument(
        "--gateway-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for the gateway, e.g. YTMAKER_CACHE_UPDATES_PER_TASK=0 to "
        "replay everything from Kafka (a gateway that did not see the updates)",
    )
    args = parser.parse_args()
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:19092")
    with tempfile.TemporaryDirectory(prefix="bench-replay-") as tmp:
        for run in range(args.runs):
            print(f"--- run {run + 1}/{args.runs} ({datetime.now(UTC):%H:%M:%S} UTC)")
            await run_once(args, bootstrap, Path(tmp))


if __name__ == "__main__":
    asyncio.run(main())

"""Delivery latency to WebSocket clients at a given event rate and number of clients,
p50/p90/p99/max, in one of two paths:

- `--path gateway` (default): an update produced to `progress.updates` → received by a client.
  This process plays the progress service (the updates, and a fake of its read-model API for
  the gateway's access checks).
- `--path progress`: a stage's `stage.progress` event produced to `pipeline.script` → folded
  by the progress service (`python -m ytmaker_progress`, SQLite read model) → its update on
  `progress.updates` → the gateway → the client: the whole path of issue 5's latency target.

    KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:19092 .venv/bin/python bench/gateway_latency.py \
        --clients 1000 --tasks 1000 --rate 1000 --seconds 20 [--path progress] [--runs 3]

Topics get `--partitions` partitions: by default as `make run` makes them on this machine (one
per core, at most 6; decision 0034); `--partitions 6` is the multi-machine default. The gateway
(and the progress service) run as their own processes, as in production. Each
client subscribes to one task; each event goes to the clients of its task. Latency is measured
on one clock (this machine): from the event's `occurred_at` (set when it is handed to the
producer) to its arrival at the client. Each run also prints the load average of the machine
and the gateway's own figures from /metrics (GC pauses, write latency).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
from aiokafka import AIOKafkaProducer
from websockets.asyncio.client import ClientConnection, connect

from ytmaker_gateway.auth import mint_token
from ytmaker_gateway.settings import GatewaySettings
from ytmaker_gateway.testing import FakeProgress, make_state, make_update, start_server
from ytmaker_shared.events import (
    StageProgressed,
    StageProgressPayload,
    StageStarted,
    StageStartedPayload,
    TaskRequested,
    TaskRequestedPayload,
)
from ytmaker_shared.events.envelope import new_event_id
from ytmaker_shared.kafka import EventProducer, delete_topics, ensure_topics
from ytmaker_shared.settings import single_host_partitions
from ytmaker_shared.stages import Stage
from ytmaker_shared.topics import Topic

SECRET = "bench-secret-0123456789abcdef0123456789abcdef"
INTERNAL_TOKEN = "bench-internal-0123456789abcdef0123456789"
OWNER = "bench"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(headers={"authorization": f"Bearer {INTERNAL_TOKEN}"}) as http:
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"{proc.args!r} exited with {proc.returncode}")
            try:
                if (await http.get(f"{url}/readyz", timeout=2)).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"{url} did not become ready")
            await asyncio.sleep(0.2)


def start_service(name: str, env: dict[str, str], label: str = "") -> subprocess.Popen[bytes]:
    """`python -m ytmaker_<name>`, its log in $TMPDIR/bench-<label or name>.log."""
    logfile = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-{label or name}.log"
    with open(logfile, "wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", f"ytmaker_{name}"], env=env, stdout=log, stderr=subprocess.STDOUT
        )


def stop_service(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


class Client:
    def __init__(self, task_id: str) -> None:
        self.task_id = task_id
        #: (occurred_at, received at) of every progress message, both epoch seconds.
        self.arrivals: list[tuple[float, float]] = []
        self.ws: ClientConnection | None = None

    async def open(self, url: str, token: str) -> None:
        self.ws = await connect(f"{url}/api/v1/ws?token={token}", max_queue=None)
        await self.ws.recv()  # connected
        await self.ws.send(json.dumps({"action": "subscribe", "task_id": self.task_id}))
        while json.loads(await self.ws.recv())["type"] != "subscribed":
            pass

    async def run(self) -> None:
        assert self.ws is not None
        try:
            async for frame in self.ws:
                now = time.time()
                message = json.loads(frame)
                if message["type"] == "progress":
                    sent = datetime.fromisoformat(message["payload"]["occurred_at"]).timestamp()
                    self.arrivals.append((sent, now))
        except Exception:
            pass

    def latencies(self, since: float) -> list[float]:
        """Latencies of the events that occurred from `since` on."""
        return [now - sent for sent, now in self.arrivals if sent >= since]


class Source:
    """Writes the events of the measured path at a steady rate."""

    def __init__(self, settings: GatewaySettings, tasks: list[str], path: str) -> None:
        self.settings = settings
        self.tasks = tasks
        self.path = path
        self.sent = 0
        self._templates: dict[str, dict[str, Any]] = {}

    async def prepare(self, progress_url: str | None) -> None:
        """For the progress path: request every task and start its script stage, and wait
        until the progress service has folded them all."""
        if self.path != "progress":
            return
        assert progress_url is not None
        async with EventProducer(self.settings, "bench") as producer:
            for task_id in self.tasks:
                requested = _requested(task_id)
                await producer.send(Topic.TASKS, requested)
                started = requested.caused(
                    StageStarted,
                    producer="script-bench",
                    stage=Stage.SCRIPT,
                    payload=StageStartedPayload(),
                )
                await producer.send(Topic.SCRIPT, started)
        headers = {"authorization": f"Bearer {INTERNAL_TOKEN}"}
        async with httpx.AsyncClient(base_url=progress_url, headers=headers) as http:
            deadline = time.monotonic() + 120
            for task_id in self.tasks:
                while True:
                    found = await http.get(f"/internal/v1/tasks/{task_id}")
                    if found.status_code == 200 and found.json()["stage"] == "script":
                        break
                    if time.monotonic() > deadline:
                        raise SystemExit(f"the progress service did not fold {task_id}")
                    await asyncio.sleep(0.1)

    async def produce(self, rate: float, seconds: float) -> int:
        producer = AIOKafkaProducer(
            bootstrap_servers=self.settings.kafka_bootstrap_servers,
            acks="all",
            enable_idempotence=True,
            linger_ms=1,
        )
        await producer.start()
        started = time.monotonic()
        try:
            while time.monotonic() - started < seconds:
                due = int((time.monotonic() - started) * rate)
                while self.sent < due:
                    topic, key, value = self._event(self.sent)
                    await producer.send(topic, value, key=key)
                    self.sent += 1
                await asyncio.sleep(0.005)
            await producer.flush()
        finally:
            await producer.stop()
        return self.sent

    def _event(self, n: int) -> tuple[str, bytes, bytes]:
        task_id = self.tasks[n % len(self.tasks)]
        now = datetime.now(UTC)
        if self.path == "gateway":
            update = make_update(task_id, owner=OWNER, n=n, progress=50, occurred_at=now)
            topic = self.settings.topics.name(Topic.PROGRESS_UPDATES)
            return topic, task_id.encode(), update.model_dump_json().encode()
        rounds = n // len(self.tasks)  # the task's how-many-th event: its progress grows
        topic = self.settings.topics.name(Topic.SCRIPT)
        return topic, task_id.encode(), self._progressed(task_id, now, min(99.9, 1 + rounds * 0.1))

    def _progressed(self, task_id: str, now: datetime, progress: float) -> bytes:
        """A `stage.progress` event's JSON, from the task's template (a pydantic model per event
        cost this process, which shares the machine, a tenth of a core at 1,000 events/s)."""
        template = self._templates.get(task_id)
        if template is None:
            event = _requested(task_id).caused(
                StageProgressed,
                producer="script-bench",
                stage=Stage.SCRIPT,
                payload=StageProgressPayload(progress=0),
            )
            template = self._templates[task_id] = event.model_dump(mode="json")
        value = orjson.dumps(
            template
            | {
                "event_id": new_event_id(),
                "occurred_at": now.isoformat().replace("+00:00", "Z"),
                "payload": template["payload"] | {"progress": progress},
            }
        )
        if len(self._templates) == 1 and not self.sent:  # the template makes valid events
            parsed = StageProgressed.model_validate_json(value)
            assert parsed.occurred_at == now and parsed.payload.progress == progress, parsed
        return value


def _requested(task_id: str) -> TaskRequested:
    return TaskRequested(
        task_id=task_id,
        project_id=f"p-{task_id}",
        owner=OWNER,
        producer="bench",
        correlation_id=task_id,
        payload=TaskRequestedPayload(title=f"Bench {task_id}", content="bench"),
    )


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


async def scrape(http: httpx.AsyncClient, url: str) -> str:
    """The gateway's /metrics. `http` is made before the measurement: making a client loads a
    TLS context, a pause of ~100 ms in this process that the clients' arrivals would show."""
    return (await http.get(f"{url}/metrics", timeout=5)).text


def gc_figures(text: str) -> list[tuple[float, float, float]]:
    """(collections, seconds, collections over 10 ms) per generation, from /metrics."""

    def value(generation: int, name: str, extra: str = "") -> float:
        label = f'generation="{generation}"{extra}'
        pattern = rf"^ytmaker_gateway_gc_pause_seconds_{name}\{{{label}\}} (\S+)"
        found = re.search(pattern, text, re.M)
        return float(found.group(1)) if found else 0.0

    return [
        (
            value(g, "count"),
            value(g, "sum"),
            value(g, "count") - value(g, "bucket", ',le="0.01"'),
        )
        for g in range(3)
    ]


def write_latency(text: str) -> tuple[float, float, float]:
    """(writes, writes within 25 ms, within 50 ms) of the gateway's own delivery histogram:
    event `occurred_at` → written on the socket, without the clients' side."""

    def bucket(le: str) -> float:
        name = "ytmaker_gateway_delivery_latency_seconds_bucket"
        found = re.search(rf'^{name}\{{le="{re.escape(le)}"\}} (\S+)', text, re.M)
        return float(found.group(1)) if found else 0.0

    return bucket("+Inf"), bucket("0.025"), bucket("0.05")


def write_delta(before: tuple[float, float, float], after: tuple[float, float, float]) -> str:
    total, within25, within50 = (a - b for a, b in zip(after, before, strict=True))
    if not total:
        return "gateway writes while measured: none"
    return (
        f"gateway writes while measured: {total:.0f}, over 25 ms "
        f"{100 * (1 - within25 / total):.2f} %, over 50 ms {100 * (1 - within50 / total):.2f} %"
        " (event → socket write, the gateway's own histogram)"
    )


def gc_delta(
    before: list[tuple[float, float, float]], after: list[tuple[float, float, float]]
) -> str:
    parts = []
    for g, (b, a) in enumerate(zip(before, after, strict=True)):
        count, total, over = (x - y for x, y in zip(a, b, strict=True))
        parts.append(f"gen{g} {count:.0f}× {total * 1000:.0f} ms ({over:.0f} over 10 ms)")
    return "gateway GC while measured: " + ", ".join(parts)


async def run_once(args: argparse.Namespace, bootstrap: str, tmp: Path) -> None:
    prefix = f"bench-{uuid.uuid4().hex[:10]}."
    settings = GatewaySettings(
        kafka_bootstrap_servers=bootstrap,
        topic_prefix=prefix,
        topic_partitions=args.partitions,
        jwt_secret=SECRET,
    )
    await ensure_topics(settings)
    tasks = [f"bench-task-{uuid.uuid4().hex[:12]}-{i}" for i in range(args.tasks)]
    base_env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "YTMAKER_TOPIC_PREFIX": prefix,
        "YTMAKER_TOPIC_PARTITIONS": str(args.partitions),
        "YTMAKER_LOG_LEVEL": "WARNING",
        "YTMAKER_INTERNAL_TOKEN": INTERNAL_TOKEN,
    }
    procs: list[subprocess.Popen[bytes]] = []
    fake_server = None
    progress_url: str | None = None
    try:
        if args.path == "progress":
            progress_port = free_port()
            progress_url = f"http://127.0.0.1:{progress_port}"
            db = tmp / f"{prefix}db"
            progress_env = base_env | {
                "YTMAKER_PROGRESS_DATABASE_URL": f"sqlite:///{db}",
                "YTMAKER_PROGRESS_HTTP_PORT": str(progress_port),
                "YTMAKER_HEALTH_PORT": "0",
            }
            if args.progress_processes == "split":  # as deployed: fold, and read side + ETA
                fold_port = free_port()
                fold_env = base_env | {
                    "YTMAKER_HEALTH_PORT": str(fold_port),
                    "YTMAKER_PROGRESS_RUN_API": "false",
                    "YTMAKER_PROGRESS_RUN_ETA": "false",
                }
                procs.append(start_service("progress", fold_env, label="progress-fold"))
                await wait_ready(f"http://127.0.0.1:{fold_port}", procs[-1])
                progress_env["YTMAKER_PROGRESS_RUN_FOLD"] = "false"
            procs.append(start_service("progress", progress_env))
            await wait_ready(progress_url, procs[-1])
        else:
            fake = FakeProgress()
            for task_id in tasks:
                fake.put_task(make_state(task_id, owner=OWNER))
            fake_server = await start_server(fake.app())
            progress_url = fake_server.base
        port = free_port()
        gateway_env = base_env | {
            "YTMAKER_JWT_SECRET": SECRET,
            "YTMAKER_PORT": str(port),
            "YTMAKER_PROGRESS_URL": progress_url,
            "YTMAKER_MAX_SUBSCRIPTIONS": "10",
            **dict(kv.split("=", 1) for kv in args.gateway_env),
        }
        procs.append(start_service("gateway", gateway_env))
        url = f"http://127.0.0.1:{port}"
        await wait_ready(url, procs[-1])
        source = Source(settings, tasks, args.path)
        await source.prepare(progress_url)

        token = mint_token(settings.token_config(), OWNER)
        clients = [Client(tasks[i % len(tasks)]) for i in range(args.clients)]
        gate = asyncio.Semaphore(50)

        async def open_one(client: Client) -> None:
            async with gate:
                await client.open(f"ws://127.0.0.1:{port}", token)

        http = httpx.AsyncClient()
        t0 = time.monotonic()
        await asyncio.gather(*(open_one(c) for c in clients))
        print(f"connected {len(clients)} clients in {time.monotonic() - t0:.1f}s")
        # The clients are this process's long-lived objects: keep the measuring instrument's
        # own garbage collections out of the figures.
        gc.collect()
        gc.freeze()
        readers = [asyncio.create_task(c.run()) for c in clients]
        producing = asyncio.create_task(source.produce(args.rate, args.warmup + args.seconds))
        await asyncio.sleep(args.warmup)
        first, since = source.sent, time.time()
        metrics = await scrape(http, url)
        gc_before, writes_before = gc_figures(metrics), write_latency(metrics)
        load_before = os.getloadavg()[0]
        sent = await producing
        expected = (sent - first) * args.clients // args.tasks
        deadline = time.monotonic() + 15  # let the last deliveries arrive
        while time.monotonic() < deadline:
            if sum(len(c.latencies(since)) for c in clients) >= expected:
                break
            await asyncio.sleep(0.1)
        load_after = os.getloadavg()[0]
        metrics = await scrape(http, url)
        gc_after, writes_after = gc_figures(metrics), write_latency(metrics)
        latencies = [x for c in clients for x in c.latencies(since)]
        closed = sum(1 for c in clients if c.ws is not None and c.ws.close_code is not None)
        print(
            f"[{args.path}] {args.partitions} partitions; events: {sent} at {args.rate:.0f}/s; "
            "deliveries measured: "
            f"{len(latencies)} of {expected}; clients closed: {closed}; "
            f"load average {load_before:.2f} → {load_after:.2f} (1 min, {os.cpu_count()} cores)"
        )
        if latencies:
            print(
                f"[{args.path}] latency p50 {pct(latencies, 50) * 1000:.1f} ms · p90 "
                f"{pct(latencies, 90) * 1000:.1f} ms · p99 {pct(latencies, 99) * 1000:.1f} ms"
                f" · max {max(latencies) * 1000:.1f} ms · mean "
                f"{statistics.fmean(latencies) * 1000:.1f} ms"
            )
        print(gc_delta(gc_before, gc_after))
        print(write_delta(writes_before, writes_after))
        gc.unfreeze()
        await http.aclose()
        for c in clients:
            if c.ws is not None:
                await c.ws.close()
        for r in readers:
            r.cancel()
    finally:
        for proc in reversed(procs):
            stop_service(proc)
        if fake_server is not None:
            await fake_server.stop()
        await delete_topics(settings)  # left behind, every run's partitions slow the broker


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=1000.0, help="events per second")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured duration")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--path", choices=("gateway", "progress"), default="gateway")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument(
        "--partitions",
        type=int,
        default=single_host_partitions(),
        help="of every topic (the fold's lanes); default: as `make run` on this machine",
    )
    parser.add_argument(
        "--progress-processes",
        choices=("split", "one"),
        default="split",
        help="the progress service as deployed (a fold process, and a read-model/API/ETA "
        "process) or all of it in one process",
    )
    parser.add_argument(
        "--gateway-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for the gateway (e.g. YTMAKER_EVENT_LOOP=asyncio)",
    )
    args = parser.parse_args()
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:19092")
    with tempfile.TemporaryDirectory(prefix="bench-gateway-") as tmp:
        for run in range(args.runs):
            print(f"--- run {run + 1}/{args.runs} ({datetime.now(UTC):%H:%M:%S} UTC)")
            await run_once(args, bootstrap, Path(tmp))


if __name__ == "__main__":
    try:
        import uvloop
    except ImportError:
        asyncio.run(main())
    else:
        uvloop.run(main())

"""Delivery latency of the gateway's fan-out: an update produced to `progress.updates` →
received by a WebSocket client, p50/p99, at a given event rate and number of clients.

    KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:19092 .venv/bin/python bench/gateway_latency.py \
        --clients 1000 --tasks 1000 --rate 1000 --seconds 20

The gateway runs as its own process (`python -m ytmaker_gateway`), as in production; this
process plays the progress service (its updates, and a fake of its read-model API for the
gateway's access checks) and the clients. Each client subscribes to one task; each event goes
to the clients of its task. Latency is measured on one clock (this machine): from the moment
the update is handed to the Kafka producer (its `occurred_at`) to its arrival at the client.
It leaves out the progress service's fold (measured by the progress service's own bench).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from aiokafka import AIOKafkaProducer
from websockets.asyncio.client import ClientConnection, connect

from ytmaker_gateway.auth import mint_token
from ytmaker_gateway.settings import GatewaySettings
from ytmaker_gateway.testing import FakeProgress, make_state, make_update, start_server
from ytmaker_shared.kafka import ensure_topics
from ytmaker_shared.topics import Topic

SECRET = "bench-secret-0123456789abcdef0123456789abcdef"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient() as http:
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"the gateway exited with {proc.returncode}")
            try:
                if (await http.get(f"{url}/readyz", timeout=2)).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("the gateway did not become ready")
            await asyncio.sleep(0.2)


def start_gateway(env: dict[str, str]) -> subprocess.Popen[bytes]:
    """`python -m ytmaker_gateway`, its log in $TMPDIR/bench-gateway.log."""
    with open(Path(os.environ.get("TMPDIR", "/tmp")) / "bench-gateway.log", "wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "ytmaker_gateway"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


class Client:
    def __init__(self, task_id: str) -> None:
        self.task_id = task_id
        self.latencies: list[float] = []
        self.received = 0
        self.ws: ClientConnection | None = None
        self.closed_code: int | None = None

    async def open(self, url: str, token: str) -> None:
        self.ws = await connect(f"{url}/api/v1/ws?token={token}", max_queue=None)
        await self.ws.recv()  # connected
        await self.ws.send(json.dumps({"action": "subscribe", "task_id": self.task_id}))
        while json.loads(await self.ws.recv())["type"] != "subscribed":
            pass

    async def run(self, measuring: asyncio.Event) -> None:
        assert self.ws is not None
        try:
            async for frame in self.ws:
                now = time.time()
                message = json.loads(frame)
                if message["type"] == "progress" and measuring.is_set():
                    sent = datetime.fromisoformat(message["payload"]["occurred_at"]).timestamp()
                    self.latencies.append(now - sent)
                    self.received += 1
        except Exception:
            pass
        self.closed_code = self.ws.close_code


async def produce(
    settings: GatewaySettings, tasks: list[str], rate: float, seconds: float, stop: asyncio.Event
) -> int:
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        acks="all",
        enable_idempotence=True,
        linger_ms=1,
    )
    await producer.start()
    topic = settings.topics.name(Topic.PROGRESS_UPDATES)
    sent = 0
    started = time.monotonic()
    try:
        tick = 0.01
        while not stop.is_set() and time.monotonic() - started < seconds:
            due = int((time.monotonic() - started) * rate)
            while sent < due:
                task_id = tasks[sent % len(tasks)]
                update = make_update(
                    task_id, owner="bench", n=sent, progress=50, occurred_at=datetime.now(UTC)
                )
                await producer.send(topic, update.model_dump_json().encode(), key=task_id.encode())
                sent += 1
            await asyncio.sleep(tick)
        await producer.flush()
    finally:
        await producer.stop()
    return sent


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=1000.0, help="events per second")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured duration")
    parser.add_argument("--warmup", type=float, default=3.0)
    args = parser.parse_args()
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:19092")
    prefix = f"bench-{uuid.uuid4().hex[:10]}."
    settings = GatewaySettings(
        kafka_bootstrap_servers=bootstrap,
        topic_prefix=prefix,
        topic_partitions=6,
        jwt_secret=SECRET,
    )
    await ensure_topics(settings)

    tasks = [f"bench-task-{i}" for i in range(args.tasks)]
    fake = FakeProgress()
    for task_id in tasks:
        fake.put_task(make_state(task_id, owner="bench"))
    progress = await start_server(fake.app())

    port = free_port()
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "YTMAKER_TOPIC_PREFIX": prefix,
        "YTMAKER_JWT_SECRET": SECRET,
        "YTMAKER_PORT": str(port),
        "YTMAKER_PROGRESS_URL": progress.base,
        "YTMAKER_LOG_LEVEL": "WARNING",
        "YTMAKER_MAX_SUBSCRIPTIONS": "10",
    }
    gateway = start_gateway(env)
    url = f"http://127.0.0.1:{port}"
    try:
        await wait_ready(url, gateway)
        token = mint_token(settings.token_config(), "bench")
        clients = [Client(tasks[i % len(tasks)]) for i in range(args.clients)]
        gate = asyncio.Semaphore(50)

        async def open_one(client: Client) -> None:
            async with gate:
                await client.open(f"ws://127.0.0.1:{port}", token)

        t0 = time.monotonic()
        await asyncio.gather(*(open_one(c) for c in clients))
        print(f"connected {len(clients)} clients in {time.monotonic() - t0:.1f}s")
        measuring = asyncio.Event()
        readers = [asyncio.create_task(c.run(measuring)) for c in clients]
        stop = asyncio.Event()
        producing = asyncio.create_task(
            produce(settings, tasks, args.rate, args.warmup + args.seconds, stop)
        )
        await asyncio.sleep(args.warmup)
        measuring.set()
        cpu0 = os.times()
        sent = await producing
        await asyncio.sleep(2.0)  # let the last deliveries arrive
        measuring.clear()
        cpu1 = os.times()
        latencies = [x for c in clients for x in c.latencies]
        expected = (sent - int(args.rate * args.warmup)) * args.clients / args.tasks
        closed = sum(1 for c in clients if c.ws is not None and c.ws.close_code is not None)
        print(
            f"events produced: {sent} at {args.rate:.0f}/s; deliveries measured: "
            f"{len(latencies)} (≈{expected:.0f} expected); clients closed: {closed}"
        )
        if latencies:
            print(
                f"latency p50 {pct(latencies, 50) * 1000:.1f} ms · p90 "
                f"{pct(latencies, 90) * 1000:.1f} ms · p99 {pct(latencies, 99) * 1000:.1f} ms"
                f" · max {max(latencies) * 1000:.1f} ms · mean "
                f"{statistics.fmean(latencies) * 1000:.1f} ms"
            )
        print(
            f"bench process CPU: {cpu1.user - cpu0.user + cpu1.system - cpu0.system:.1f}s "
            f"over the measured {args.seconds:.0f}s"
        )
        for c in clients:
            if c.ws is not None:
                await c.ws.close()
        for r in readers:
            r.cancel()
    finally:
        gateway.send_signal(signal.SIGTERM)
        try:
            gateway.wait(20)
        except subprocess.TimeoutExpired:
            gateway.kill()
        await progress.stop()


if __name__ == "__main__":
    asyncio.run(main())

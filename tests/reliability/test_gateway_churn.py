"""Churn: hundreds of clients connect to a gateway process
(started as `make run` starts it) during live runs, subscribe from random offsets, drop their
connections at random moments (closed or cut) and resume, with or without `old_client_id`.
Each ends with exactly its task's log after the offset it started from; afterwards the
gateway has no session, subscription or stream left, and its memory is within 10 % of where
it started. And a client that stops reading is closed with 1013 while the others' deliveries
go on, then resumes exactly.

Seeded: the seed is printed, and `YTMAKER_FUZZ_SEED=<seed>` repeats a run.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import re
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.integration.gateway.conftest import SECRET, Cluster, cluster  # noqa: F401
from tests.support.gateway import make_update, start_server
from ytmaker_dev.ports import free_port
from ytmaker_gateway.auth import mint_token
from ytmaker_shared.events import new_event_id
from ytmaker_shared.progress import TaskStatus
from ytmaker_shared.topics import Topic

pytestmark = pytest.mark.kafka

SEED = int(os.environ.get("YTMAKER_FUZZ_SEED") or random.randrange(2**32))
TASKS, UPDATES, CLIENTS = 8, 60, 200
#: Closed sessions are kept for the reconnect window, and garbage cycles of frozen objects
#: wait for the collector's full pass (decision 0033): both short here, so that "memory back
#: to where it started" is seen in seconds rather than minutes (defaults: 300 s and 600 s).
SESSION_WINDOW_S, FULL_COLLECTION_S = 1.5, 1
UPDATE_TYPES = {"progress", "status", "error"}


@dataclass
class Gateway:
    url: str
    ws: str
    proc: subprocess.Popen[bytes]

    def rss_mib(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise AssertionError("no VmRSS")

    async def metric(self, name: str) -> float:
        async with httpx.AsyncClient() as http:
            text = (await http.get(f"{self.url}/metrics")).text
        found = re.search(rf"^{name} (\S+)$", text, re.M)
        assert found, name
        return float(found.group(1))


def _spawn(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "ytmaker_gateway"], env=env, stdout=out, stderr=subprocess.STDOUT
        )


@pytest.fixture
async def gateway(cluster: Cluster, tmp_path: Path) -> AsyncIterator[Gateway]:  # noqa: F811
    """`python -m ytmaker_gateway` on the cluster's topics, asking the cluster's fake read
    model (served from this process) who owns what."""
    fake = await start_server(cluster.fake.app())
    port = free_port()
    settings = cluster.settings
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "YTMAKER_TOPIC_PREFIX": settings.topic_prefix,
        "YTMAKER_JWT_SECRET": SECRET,
        "YTMAKER_PORT": str(port),
        "YTMAKER_PROGRESS_URL": fake.base,
        "YTMAKER_ARTIFACT_DIR": str(tmp_path / "artifacts"),
        "YTMAKER_MAX_CONNECTIONS_PER_USER": "500",  # the limit itself: services/gateway/tests
        "YTMAKER_SESSION_WINDOW_S": str(SESSION_WINDOW_S),
        "YTMAKER_CACHE_UPDATES_PER_TASK": "10",  # most resumes read the log, page by page
        "YTMAKER_REPLAY_PAGE": "16",
        "YTMAKER_GC_FREEZE_INTERVAL_S": "0.5",
        "YTMAKER_GC_FULL_EVERY_S": str(FULL_COLLECTION_S),
        "YTMAKER_UNKNOWN_TASK_WAIT_S": "0",
        "YTMAKER_LOG_LEVEL": "WARNING",
    }
    proc = _spawn(env, tmp_path / "gateway.log")
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient() as http:
            for _ in range(600):
                assert proc.poll() is None, (tmp_path / "gateway.log").read_text()[-3000:]
                try:
                    if (await http.get(f"{url}/readyz", timeout=2)).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)
        yield Gateway(url, f"ws://127.0.0.1:{port}", proc)
    finally:
        proc.terminate()
        await asyncio.to_thread(proc.wait, 30)
        await fake.stop()


@dataclass
class Run:
    task_id: str
    owner: str
    written: list[int] = field(default_factory=list)
    done: asyncio.Event = field(default_factory=asyncio.Event)


async def _write_runs(cluster: Cluster, runs: list[Run], rng: random.Random) -> None:  # noqa: F811
    began = time.monotonic()
    for n in range(1, UPDATES):
        status = TaskStatus.COMPLETED if n == UPDATES - 1 else TaskStatus.RUNNING
        offsets = await asyncio.gather(
            *(
                cluster.write(
                    make_update(run.task_id, owner=run.owner, n=n, progress=n, status=status)
                )
                for run in runs
            )
        )
        for run, offset in zip(runs, offsets, strict=True):
            run.written.append(offset)
        await asyncio.sleep(rng.uniform(0.02, 0.08))
    for run in runs:
        run.done.set()
    print(f"the runs were written in {time.monotonic() - began:.1f} s")


async def _recv(ws: ClientConnection) -> dict[str, Any]:
    async with asyncio.timeout(30):
        message: dict[str, Any] = json.loads(await ws.recv())
    return message


@dataclass
class Tally:
    connections: int = 0
    from_start: int = 0
    slow_closes: int = 0  # closed with 1013 (too slow, here) and resumed
    refused: int = 0  # `unavailable` / `replay_failed`: asked again, as clients do
    seconds: float = 0.0  # from the first update written to the last client done
    opening: tuple[float, float] = (0.0, 0.0)
    closing: float = 0.0
    #: (seconds, start, connections, longest wait for a message) of the slowest clients
    slowest: list[tuple[float, int, int, float]] = field(default_factory=list)


async def _close(ws: ClientConnection) -> None:
    """Close, reading (and dropping) what still comes until the server's close frame: a
    client library whose queue of unread messages is full stops reading, and would wait out
    its close timeout (10 s) for a close frame it never reads."""
    closing = asyncio.create_task(ws.close())
    with contextlib.suppress(ConnectionClosed):
        while True:
            await ws.recv()
    await closing


async def _client(
    gw: Gateway,
    cluster: Cluster,  # noqa: F811
    run: Run,
    rng: random.Random,
    tally: Tally,
) -> None:
    """Follow `run` from a random offset with random drops, until its last update."""
    await asyncio.sleep(rng.uniform(0, 1))  # some arrive while the run is well under way
    began, connections, longest_wait = time.monotonic(), 0, 0.0
    start = rng.choice([-1, *run.written[: len(run.written) // 2 + 1]])
    tally.from_start += start == -1
    seen: list[int] = []
    client_id: str | None = None
    token = cluster.token(run.owner)
    while not seen or seen[-1] != run.written[-1] or not run.done.is_set():
        query = f"&old_client_id={client_id}" if client_id and rng.random() < 0.4 else ""
        opening = time.monotonic()
        ws = await connect(f"{gw.ws}/api/v1/ws?token={token}{query}", open_timeout=60)
        opened = time.monotonic()
        client_id = (await _recv(ws))["payload"]["client_id"]
        tally.opening = max(
            tally.opening, (round(opened - opening, 1), round(time.monotonic() - opened, 1))
        )
        since = seen[-1] if seen else start
        await ws.send(json.dumps({"action": "subscribe", "task_id": run.task_id, "since": since}))
        budget, answered, last = rng.randint(1, 40), False, []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30

        def finished() -> bool:
            return bool(seen) and run.done.is_set() and seen[-1] == run.written[-1]

        try:
            while budget > 0 and not finished():
                try:  # short waits: the run may end while this client waits for more
                    message = json.loads(await asyncio.wait_for(ws.recv(), 0.25))
                except TimeoutError:
                    if loop.time() < deadline:
                        continue
                    raise AssertionError(
                        f"nothing for 30 s: {run.task_id} since {since}, seen up to "
                        f"{seen[-1:]} of {run.written[-1]} (done: {run.done.is_set()}), "
                        f"answered {answered}, client {client_id}, last messages {last}"
                    ) from None
                longest_wait = max(longest_wait, loop.time() - (deadline - 30))
                deadline = loop.time() + 30
                last = [*last[-4:], str(message)[:200]]
                retryable = message["type"] == "error" and message["payload"]["code"] in (
                    "unavailable",
                    "replay_failed",
                )
                if retryable and not message["payload"]["details"].get("restored"):
                    tally.refused += 1
                    break
                if message["type"] == "subscribed" and not message["payload"]["restored"]:
                    answered = True
                elif answered and message["type"] in UPDATE_TYPES:
                    assert not seen or message["offset"] > seen[-1], "duplicate or out of order"
                    seen.append(message["offset"])
                    budget -= 1
        except ConnectionClosed as closed:  # 1013 (too slow here): resume, as clients do
            assert closed.rcvd is not None and closed.rcvd.code == 1013, closed
            tally.slow_closes += 1
        finally:
            closing = time.monotonic()
            if rng.random() < 0.5:
                await _close(ws)
            else:
                ws.transport.abort()  # no close handshake: the network went away
            tally.closing = max(tally.closing, round(time.monotonic() - closing, 1))
        tally.connections += 1
        connections += 1
        await asyncio.sleep(rng.uniform(0, 0.2))
    assert seen == [o for o in run.written if o > start], (run.task_id, start)
    tally.slowest = sorted(
        [
            *tally.slowest,
            (round(time.monotonic() - began, 1), start, connections, round(longest_wait, 1)),
        ]
    )[-3:]


async def _round(gateway: Gateway, cluster: Cluster, rng: random.Random) -> Tally:  # noqa: F811
    """CLIENTS clients churning on TASKS live runs of UPDATES updates each; then waits until
    the gateway holds no connection or subscription, and for the reconnect window and the
    collector's full pass."""
    runs = [Run(new_event_id(), f"user-{i}") for i in range(TASKS)]
    for run in runs:
        update = make_update(run.task_id, owner=run.owner, n=0, status=TaskStatus.QUEUED)
        run.written.append(await cluster.write(update))
    tally = Tally()
    started = time.monotonic()
    writer = asyncio.create_task(_write_runs(cluster, runs, rng))
    await asyncio.gather(
        *(
            _client(gateway, cluster, runs[i % TASKS], random.Random(rng.getrandbits(64)), tally)
            for i in range(CLIENTS)
        )
    )
    await writer
    tally.seconds = time.monotonic() - started
    assert tally.connections >= 2 * CLIENTS

    async def settled() -> bool:
        return (
            await gateway.metric("ytmaker_gateway_connected_clients") == 0
            and await gateway.metric("ytmaker_gateway_project_watchers") == 0
        )

    for _ in range(300):
        if await settled():
            break
        await asyncio.sleep(0.1)
    assert await settled(), "sessions or subscriptions left behind"
    async with httpx.AsyncClient(base_url=gateway.url) as http:
        token = mint_token(cluster.settings.token_config(), "ops", ("operator",))
        operator = {"Authorization": f"Bearer {token}"}
        stats = (await http.get("/api/v1/websocket/stats", headers=operator)).json()
    assert stats["total_clients"] == 0 and stats["fanout"]["subscribed_tasks"] == 0, stats
    # Past the reconnect window, one more connection expires the closed sessions; then the
    # collector's full pass.
    await asyncio.sleep(SESSION_WINDOW_S + 0.5)
    async with connect(f"{gateway.ws}/api/v1/ws?token={cluster.token()}") as ws:
        await _recv(ws)
    await asyncio.sleep(2 * FULL_COLLECTION_S + 0.5)
    return tally


async def test_hundreds_of_clients_churning_during_live_runs(
    cluster: Cluster,  # noqa: F811 (the fixture)
    gateway: Gateway,
) -> None:
    """Two rounds: the first brings the process to its working size (its allocator keeps
    what the peak of connections took), the second must end where the first did."""
    print(f"fuzz seed {SEED} (YTMAKER_FUZZ_SEED={SEED} repeats it)")
    rng = random.Random(SEED)
    ready_mib = gateway.rss_mib()
    first = await _round(gateway, cluster, rng)
    started_mib = gateway.rss_mib()
    second = await _round(gateway, cluster, rng)
    ended_mib = gateway.rss_mib()
    for n, tally in enumerate((first, second), start=1):
        print(
            f"round {n}: {CLIENTS} clients on {TASKS} live runs of {UPDATES} updates, "
            f"{tally.connections} connections ({tally.from_start} clients from the start of "
            f"the run, the others from an offset; {tally.slow_closes} closed for being too "
            f"slow and {tally.refused} refused for a moment, each resumed) in "
            f"{tally.seconds:.1f} s; the slowest clients (s, start, connections, longest wait): "
            f"{tally.slowest}; longest (handshake, hello) {tally.opening}, close {tally.closing}"
        )
    print(
        f"gateway memory: {ready_mib:.1f} MiB ready, {started_mib:.1f} after round 1, "
        f"{ended_mib:.1f} after round 2"
    )
    assert ended_mib <= started_mib * 1.10


async def test_a_client_that_stops_reading_is_closed_while_the_others_go_on(
    cluster: Cluster,  # noqa: F811 (the fixture)
    gateway: Gateway,
) -> None:
    owner, task_id = "alice", new_event_id()
    first = await cluster.write(make_update(task_id, owner=owner, n=0))
    token = cluster.token(owner)
    subscribe = json.dumps({"action": "subscribe", "task_id": task_id, "since": -1})
    fast = [await connect(f"{gateway.ws}/api/v1/ws?token={token}") for _ in range(3)]
    # The slow one: a tiny receive window and a client library that stops reading at once.
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.connect(("127.0.0.1", int(gateway.url.rsplit(":", 1)[1])))
    slow = await connect(f"{gateway.ws}/api/v1/ws?token={token}", sock=raw, max_queue=1)
    for ws in [*fast, slow]:
        await _recv(ws)
        await ws.send(subscribe)
    count = 3000

    async def follow(ws: ClientConnection, until: int = count) -> list[int]:
        got: list[int] = []
        while len(got) < until:
            message = await _recv(ws)
            if message["type"] in UPDATE_TYPES:
                got.append(message["offset"])
        return got

    followers = [asyncio.create_task(follow(ws)) for ws in fast]  # they read all along
    topic = cluster.settings.topics.name(Topic.PROGRESS_UPDATES)
    pending = []
    # ~12 MB, more than the kernel's buffers and the queue hold for the slow one; paced a
    # little (a task never writes thousands of updates in one instant).
    for n in range(1, count):
        update = make_update(task_id, owner=owner, n=n, message="x" * 3900, progress=n / 30)
        value = update.model_dump_json().encode()
        pending.append(await cluster.kafka.send(topic, value, key=task_id.encode()))
        if n % 50 == 0:
            await asyncio.sleep(0.1)
    written = [first] + [meta.offset for meta in await asyncio.gather(*pending)]
    for got in await asyncio.gather(*followers):
        assert got == written  # every update, while the slow one sat there
    slow_seen: list[int] = []
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            message = await _recv(slow)
            if message["type"] in UPDATE_TYPES:
                slow_seen.append(message["offset"])
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
    assert slow_seen == written[: len(slow_seen)] and len(slow_seen) < len(written)
    # It resumes with the last offset it read and gets exactly the rest.
    async with connect(
        f"{gateway.ws}/api/v1/ws", additional_headers={"Authorization": f"Bearer {token}"}
    ) as ws:
        await _recv(ws)
        since = slow_seen[-1] if slow_seen else -1
        await ws.send(json.dumps({"action": "subscribe", "task_id": task_id, "since": since}))
        rest = written[len(slow_seen) :]
        assert await follow(ws, len(rest)) == rest
    for ws in fast:
        await ws.close()

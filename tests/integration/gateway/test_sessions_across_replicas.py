"""Sessions across gateway replicas (docs/decisions/0032): a client that
reconnects with `old_client_id` to ANOTHER replica gets `reconnected`, its subscriptions back
and exactly the updates it missed, after the last offset per task it acknowledged (its pong to
a ping queued after it: the heartbeat here is a second).

Everything is real: the broker, the progress service (`python -m ytmaker_progress`, its fold
and its SQLite read model, where the replicas keep the session records), and two gateways
wired as `main.build` wires them (real producer, fan-out, replay readers, read-model client).
This test plays the script stage: it writes `stage.progress` events, which the progress
service folds into the updates the clients receive.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import termios
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.support.gateway import RunningServer, start_server
from tests.support.internal import internal_headers
from tests.support.kafka import unique_name
from ytmaker_dev.ports import free_port
from ytmaker_gateway.app import create_app
from ytmaker_gateway.auth import mint_token
from ytmaker_gateway.gateway import Gateway
from ytmaker_gateway.main import build
from ytmaker_gateway.settings import GatewaySettings
from ytmaker_shared.events import (
    StageProgressed,
    StageProgressPayload,
    StageStarted,
    StageStartedPayload,
    TaskRequested,
    TaskRequestedPayload,
    new_event_id,
)
from ytmaker_shared.kafka import EventProducer, delete_topics, ensure_topics
from ytmaker_shared.stages import Stage
from ytmaker_shared.topics import Topic

from .conftest import SECRET, task_offsets

pytestmark = pytest.mark.kafka

UPDATES = {"progress", "status", "error"}
HEARTBEAT_S = 1.0


@dataclass
class Replica:
    gateway: Gateway
    server: RunningServer
    producer: EventProducer
    hub_task: asyncio.Task[None]
    stopping: asyncio.Event = field(default_factory=asyncio.Event)

    async def stop(self) -> None:
        self.stopping.set()
        await self.server.stop()
        await self.hub_task
        await self.gateway.sessions.drain()
        await self.gateway.streams.reader.close()
        await self.gateway.progress.close()
        await self.producer.stop()


@dataclass
class World:
    settings: GatewaySettings
    progress_url: str
    stage: EventProducer
    env: dict[str, str]
    tmp: Path
    replicas: list[Replica] = field(default_factory=list)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def token(self, user: str = "alice") -> str:
        return mint_token(self.settings.token_config(), user)

    async def replica(self) -> Replica:
        settings = self.settings.model_copy(update={"instance": f"r{len(self.replicas)}"})
        producer = EventProducer(settings, "gateway")
        await producer.start()
        gateway = build(settings, producer)
        await gateway.hub.start()
        stopping = asyncio.Event()
        hub_task = asyncio.create_task(gateway.hub.run(stopping))
        server = await start_server(
            create_app(gateway), settings.max_frame_bytes, compression=settings.ws_compression
        )
        replica = Replica(gateway, server, producer, hub_task, stopping)
        self.replicas.append(replica)
        return replica

    async def gateway_process(self, **env: str) -> tuple[str, subprocess.Popen[bytes]]:
        """A gateway as its own process (to be SIGKILLed); returns its ws:// base."""
        port = free_port()
        proc = _spawn("gateway", self.env | {"YTMAKER_PORT": str(port)} | env, self.tmp)
        self.procs.append(proc)
        await _ready(f"http://127.0.0.1:{port}", proc)
        return f"ws://127.0.0.1:{port}", proc

    async def start_task(self, owner: str = "alice") -> TaskRequested:
        """A requested task whose script stage has started, folded by the progress service."""
        task_id = new_event_id()
        requested = TaskRequested(
            task_id=task_id,
            project_id=new_event_id(),
            owner=owner,
            producer="test",
            correlation_id=task_id,
            payload=TaskRequestedPayload(title="Sessions", content="Owls at night."),
        )
        await self.stage.send(Topic.TASKS, requested)
        started = requested.caused(
            StageStarted, producer="script", stage=Stage.SCRIPT, payload=StageStartedPayload()
        )
        await self.stage.send(Topic.SCRIPT, started)
        await self.wait_folded(task_id, lambda state: state["stage"] == "script")
        return requested

    async def progress(self, requested: TaskRequested, value: float, padding: int = 0) -> None:
        event = requested.caused(
            StageProgressed,
            producer="script",
            stage=Stage.SCRIPT,
            payload=StageProgressPayload(progress=value, message=f"at {value}".ljust(padding)),
        )
        await self.stage.send(Topic.SCRIPT, event)

    async def wait_folded(self, task_id: str, condition: Any, timeout: float = 30) -> int:
        """Wait until the read model's state of the task satisfies `condition`; its offset."""
        found: dict[str, Any] = {}

        async def check() -> bool:
            async with httpx.AsyncClient(
                base_url=self.progress_url, headers=internal_headers()
            ) as http:
                response = await http.get(f"/internal/v1/tasks/{task_id}")
            if response.status_code == 200 and condition(response.json()):
                found.update(response.json())
                return True
            return False

        deadline = asyncio.get_running_loop().time() + timeout
        while not await check():
            assert asyncio.get_running_loop().time() < deadline, f"{task_id} not folded"
            await asyncio.sleep(0.1)
        return int(found["offset"])

    async def session_record(self, client_id: str) -> dict[str, Any] | None:
        async with httpx.AsyncClient(
            base_url=self.progress_url, headers=internal_headers()
        ) as http:
            items = (await http.get("/internal/v1/sessions")).json()["items"]
        return next((s for s in items if s["client_id"] == client_id), None)


def _spawn(service: str, env: dict[str, str], tmp: Path) -> subprocess.Popen[bytes]:
    """`python -m ytmaker_<service>`, its output in `tmp/<service>-<n>.log`."""
    path = tmp / f"{service}-{len(list(tmp.glob(f'{service}-*.log')))}.log"
    with open(path, "wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", f"ytmaker_{service}"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def _log_tails(tmp: Path, lines: int = 20) -> str:
    return "\n".join(
        f"--- {path.name} ---\n" + "\n".join(path.read_text().splitlines()[-lines:])
        for path in sorted(tmp.glob("*.log"))
    )


async def _ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    async with httpx.AsyncClient(headers=internal_headers()) as http:

        async def ready() -> bool:
            assert proc.poll() is None, f"{url}: the process exited with {proc.returncode}"
            try:
                return (await http.get(f"{url}/readyz", timeout=2)).status_code == 200
            except httpx.HTTPError:
                return False

        deadline = asyncio.get_running_loop().time() + timeout
        while not await ready():
            assert asyncio.get_running_loop().time() < deadline, f"{url} not ready"
            await asyncio.sleep(0.2)


@pytest.fixture
async def world(kafka_bootstrap: str, tmp_path: Path) -> AsyncIterator[World]:
    prefix = unique_name("gwsess") + "."
    progress_port = free_port()
    progress_url = f"http://127.0.0.1:{progress_port}"
    settings = GatewaySettings(
        kafka_bootstrap_servers=kafka_bootstrap,
        topic_prefix=prefix,
        topic_partitions=3,
        jwt_secret=SECRET,
        progress_url=progress_url,
        unknown_task_wait_s=5,
        artifact_dir=tmp_path / "artifacts",
        session_restore_wait_s=5,
        heartbeat_interval_s=HEARTBEAT_S,
    )
    await ensure_topics(settings)
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "YTMAKER_TOPIC_PREFIX": prefix,
        "YTMAKER_TOPIC_PARTITIONS": "3",
        "YTMAKER_JWT_SECRET": SECRET,
        "YTMAKER_PROGRESS_URL": progress_url,
        "YTMAKER_ARTIFACT_DIR": str(tmp_path / "artifacts"),
        "YTMAKER_HEALTH_PORT": "0",
        "YTMAKER_LOG_LEVEL": "INFO",
        "YTMAKER_HEARTBEAT_INTERVAL_S": str(HEARTBEAT_S),
    }
    progress = _spawn(
        "progress",
        env
        | {
            "YTMAKER_PROGRESS_DATABASE_URL": f"sqlite:///{tmp_path / 'progress.db'}",
            "YTMAKER_PROGRESS_HTTP_PORT": str(progress_port),
        },
        tmp_path,
    )
    stage = EventProducer(settings, "script")
    world = World(settings, progress_url, stage, env, tmp_path, procs=[progress])
    try:
        await _ready(progress_url, progress)
        await stage.start()
        yield world
    finally:
        for replica in world.replicas:
            await replica.stop()
        await stage.stop()
        for proc in world.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)
        await delete_topics(settings)
        print(_log_tails(tmp_path))  # shown when the test fails


async def _recv(
    ws: ClientConnection, timeout: float = 20, *, pings: bool = False
) -> dict[str, Any]:
    """The next message, answering the server's pings on the way (returned if `pings`)."""
    async with asyncio.timeout(timeout):
        while True:
            message: dict[str, Any] = json.loads(await ws.recv())
            if message["type"] != "ping":
                return message
            await ws.send(json.dumps({"action": "pong"}))
            if pings:
                return message


async def _acknowledge(ws: ClientConnection, task_id: str, seen: list[dict[str, Any]]) -> None:
    """Read (into `seen`) up to the next ping and answer it: the server may then count
    everything queued before that ping as read."""
    while (message := await _recv(ws, pings=True))["type"] != "ping":
        if message["task_id"] == task_id:
            seen.append(message)


async def _updates_until(
    ws: ClientConnection, task_id: str, offset: int, seen: list[dict[str, Any]]
) -> None:
    """Receive into `seen` until the task's update at `offset` (or a later one) arrived, or a
    snapshot that covers it (a subscription the gateway handles after that update was folded
    starts from a snapshot past it)."""
    while not any(m["offset"] >= offset for m in seen if m["type"] in UPDATES | {"snapshot"}):
        message = await _recv(ws)
        if message["task_id"] == task_id:
            seen.append(message)


def _offsets(messages: list[dict[str, Any]]) -> list[int]:
    return [m["offset"] for m in messages if m["type"] in UPDATES]


async def _watch_then_leave(
    world: World, url: str, requested: TaskRequested, *, acknowledge: bool = True
) -> tuple[str, ClientConnection, list[dict[str, Any]]]:
    """Connect, subscribe from the snapshot, receive two progress updates and (if
    `acknowledge`) answer the ping that follows them; the client id, the open socket and what
    it received."""
    ws = await connect(f"{url}/api/v1/ws?token={world.token()}")
    connected = await _recv(ws)
    assert connected["type"] == "connected"
    task_id = requested.task_id
    await ws.send(json.dumps({"action": "subscribe", "task_id": task_id, "since": None}))
    seen: list[dict[str, Any]] = []
    for value in (10.0, 20.0):
        await world.progress(requested, value)
        last = await world.wait_folded(task_id, lambda s, v=value: s["progress"] >= v * 0.2)
        await _updates_until(ws, task_id, last, seen)
    if acknowledge:
        await _acknowledge(ws, task_id, seen)
    assert [m["type"] for m in seen][:2] == ["subscribed", "snapshot"]
    return str(connected["payload"]["client_id"]), ws, seen


async def _reconnect_and_check(
    world: World,
    url: str,
    old_client_id: str,
    requested: TaskRequested,
    last_seen: int,
    missed: int,
) -> None:
    """Reconnect with `old_client_id`; assert `reconnected`, the restored subscription from
    `last_seen`, then exactly the updates after it in the log (`missed`, the last one written
    while away, among them), then live ones."""
    task_id = requested.task_id
    ws = await connect(f"{url}/api/v1/ws?token={world.token()}&old_client_id={old_client_id}")
    seen: list[dict[str, Any]] = []
    try:
        greeting = await _recv(ws)
        assert greeting["type"] == "reconnected", greeting
        assert greeting["payload"]["old_client_id"] == old_client_id
        assert greeting["payload"]["subscribed"] == [task_id]
        subscribed = await _recv(ws)
        assert subscribed["type"] == "subscribed", subscribed
        assert subscribed["payload"]["restored"] is True
        assert subscribed["offset"] == last_seen
        await world.progress(requested, 60.0)
        live = await world.wait_folded(task_id, lambda s: s["progress"] >= 12)
        await _updates_until(ws, task_id, live, seen)
    finally:
        await ws.close()
    log = await task_offsets(world.settings, task_id)
    assert missed in log
    assert _offsets(seen) == [o for o in log if o > last_seen], "exactly what was missed, then live"


async def _stop_as_kubernetes_does(
    world: World, proc: subprocess.Popen[bytes], ws: ClientConnection
) -> None:
    """SIGTERM the replica `proc` (the first gateway process): `ws`, a client that reads, gets
    close code 1012 (service restart, docs/protocol.md) at once; the process exits 0 within its
    shutdown grace, its log JSON lines to the last, "stopped", and none of them an error."""
    grace = world.settings.shutdown_grace_s
    stop_asked = asyncio.get_running_loop().time()
    proc.send_signal(signal.SIGTERM)
    async with asyncio.timeout(10):
        with pytest.raises(ConnectionClosed):
            while True:
                await ws.recv()
    assert ws.close_code == 1012, (ws.close_code, ws.close_reason)
    assert await asyncio.to_thread(proc.wait, grace + 20) == 0
    assert asyncio.get_running_loop().time() - stop_asked < grace + 10
    log = (world.tmp / "gateway-0.log").read_text()
    lines = [json.loads(line) for line in log.splitlines()]  # uvicorn's own lines too
    assert lines[-1]["msg"] == "stopped", log[-2000:]
    assert [line for line in lines if line["level"] == "ERROR"] == []  # a rollout pages nobody


async def test_a_session_left_on_one_replica_is_restored_by_another(world: World) -> None:
    a, b = await world.replica(), await world.replica()
    requested = await world.start_task()
    task_id = requested.task_id
    client_id, ws, seen = await _watch_then_leave(world, a.server.ws, requested)
    last_seen = _offsets(seen)[-1]
    await ws.close()
    # Missed while away: written, folded, not received.
    for value in (30.0, 40.0, 50.0):
        await world.progress(requested, value)
    missed_up_to = await world.wait_folded(task_id, lambda s: s["progress"] >= 10)

    # Replica A records the close with the last offset the client acknowledged.
    async with asyncio.timeout(10):
        await a.gateway.sessions.drain()
    record = await world.session_record(client_id)
    assert record is not None and record["disconnected_at"] is not None
    assert record["offsets"] == {task_id: last_seen}

    await _reconnect_and_check(world, b.server.ws, client_id, requested, last_seen, missed_up_to)
    assert b.gateway.reconnects_restored == 1
    assert a.gateway.reconnects == 0


async def test_a_replica_that_dies_leaves_its_last_checkpoint_to_the_others(world: World) -> None:
    """Replica A is a process, killed with SIGKILL: it never records the close; replica B
    waits `session_restore_wait_s`, then restores from A's last checkpoint."""
    url_a, proc_a = await world.gateway_process(YTMAKER_SESSION_CHECKPOINT_S="0.2")
    b = await world.replica()
    requested = await world.start_task()
    task_id = requested.task_id
    client_id, ws, seen = await _watch_then_leave(world, url_a, requested)
    last_seen = _offsets(seen)[-1]

    async def checkpointed() -> bool:
        record = await world.session_record(client_id)
        return record is not None and record["offsets"].get(task_id) == last_seen

    deadline = asyncio.get_running_loop().time() + 10
    while not await checkpointed():
        assert asyncio.get_running_loop().time() < deadline, "no checkpoint"
        await asyncio.sleep(0.1)
    proc_a.send_signal(signal.SIGKILL)
    proc_a.wait(10)
    await ws.close()
    await world.progress(requested, 30.0)
    missed = await world.wait_folded(task_id, lambda s: s["progress"] >= 6)

    record = await world.session_record(client_id)
    assert record is not None and record["disconnected_at"] is None  # A never said goodbye
    await _reconnect_and_check(world, b.server.ws, client_id, requested, last_seen, missed)


async def test_a_replica_stopped_for_a_rolling_update_hands_its_sessions_over(
    world: World,
) -> None:
    """Replica A is a process stopped with SIGTERM, as Kubernetes stops a pod: its client gets
    close code 1012 (service restart, docs/protocol.md), A records the close with the last
    offset it delivered and exits 0, so that replica B restores the session from that record
    (a closed record is used at once; an open one is waited for)."""
    url_a, proc_a = await world.gateway_process(YTMAKER_SESSION_CHECKPOINT_S="0")
    b = await world.replica()
    requested = await world.start_task()
    task_id = requested.task_id
    client_id, ws, seen = await _watch_then_leave(world, url_a, requested)
    last_seen = _offsets(seen)[-1]

    await _stop_as_kubernetes_does(world, proc_a, ws)
    record = await world.session_record(client_id)
    assert record is not None and record["disconnected_at"] is not None  # A said goodbye
    assert record["offsets"] == {task_id: last_seen}
    await world.progress(requested, 30.0)
    missed = await world.wait_folded(task_id, lambda s: s["progress"] >= 6)
    await _reconnect_and_check(world, b.server.ws, client_id, requested, last_seen, missed)
    assert b.gateway.reconnects_restored == 1


def _stalled_socket(url: str) -> socket.socket:
    """A connected TCP socket to the `ws://` base `url` with a receive buffer of a few KB, so that
    a client that stops reading it backs up into the replica soon."""
    host, port = url.removeprefix("ws://").split(":")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: the window
    sock.connect((host, int(port)))
    sock.setblocking(False)
    return sock


async def test_a_client_that_stopped_reading_does_not_hold_a_stopping_replica_up(
    world: World,
) -> None:
    """A replica stopped with SIGTERM while one of its clients reads nothing (its socket full,
    the replica's writes to it waiting) still exits 0 within its shutdown grace, its log JSON
    to the end: the client that reads gets 1012 at once and its close is recorded, as in a
    rolling update without the other. Neither answered a ping (the heartbeat is the default's
    30 s, which the stalled client outlives unpinged): both are recorded with what they said
    they have, not with what the replica wrote to them."""
    url_a, proc_a = await world.gateway_process(
        YTMAKER_SESSION_CHECKPOINT_S="0",
        YTMAKER_CLIENT_QUEUE_SIZE="100000",
        YTMAKER_HEARTBEAT_INTERVAL_S="30",
    )
    requested = await world.start_task()
    task_id = requested.task_id
    reader_id, reader, seen = await _watch_then_leave(world, url_a, requested, acknowledge=False)

    sock = _stalled_socket(url_a)
    stalled = await connect(
        f"{url_a}/api/v1/ws?token={world.token()}", sock=sock, max_queue=1, ping_interval=None
    )
    hello = json.loads(await stalled.recv())
    assert hello["type"] == "connected"
    await stalled.send(json.dumps({"action": "subscribe", "task_id": task_id, "since": 0}))

    # 2,000 updates of ~4 KB: more than the kernel's send buffer (4 MiB at most) and the
    # replica's transport hold for the stalled client, so that the replica's writes wait
    values = [20.0 + i / 100 for i in range(1, 2001)]
    await asyncio.gather(*(world.progress(requested, value, padding=3900) for value in values))
    last = await world.wait_folded(task_id, lambda s: s["progress"] >= values[-1] * 0.2)
    async with asyncio.timeout(60):
        await _updates_until(reader, task_id, last, seen)  # the replica has sent what it could
    backed_up = int.from_bytes(fcntl.ioctl(sock, termios.FIONREAD, b"\0" * 4), "little")
    assert backed_up > 0, "the stalled client's socket should hold unread updates"

    await _stop_as_kubernetes_does(world, proc_a, reader)
    record = await world.session_record(reader_id)
    assert record is not None and record["disconnected_at"] is not None
    # it asked for a snapshot and acknowledged nothing since: a restore sends a snapshot
    assert record["subscriptions"] == [task_id] and record["offsets"] == {}

    got: list[dict[str, Any]] = []
    with contextlib.suppress(ConnectionClosed, TimeoutError):
        async with asyncio.timeout(10):
            while True:
                got.append(json.loads(await stalled.recv()))
    assert len(_offsets(got)) < len(values), "the stalled client was behind when A stopped"
    # its close is recorded too, with its `since`: a restore resends what it never read
    record = await world.session_record(hello["payload"]["client_id"])
    assert record is not None and record["disconnected_at"] is not None
    assert record["offsets"] == {task_id: 0}

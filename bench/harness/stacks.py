"""The targets as running processes (ytmaker, the Redis design with and without its database, the
Socket.IO design): start, stop, their pids (for CPU), their clients.

ytmaker is started by `scripts/run_local.py`, the code behind `make run`, with the services
that are not pipeline stages (`--services`, by default every service of the checkout but the
stage workers: run_local starts every process of each) and `--no-sample`; whatever processes
it starts are found from its output (`started <name> pid <pid>`) and from the process tree, so
a new layout is measured as it is.
The broker is run_local's too: the one of `KAFKA_BOOTSTRAP_SERVERS` when set, otherwise one it
starts in its var directory (`YTMAKER_VAR_DIR`, here a temporary directory); with `kafka_users`
always one of its own that signs every client in over TLS (`run_local.py --kafka-users`), the
load generator's too.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import shutil
import signal
import sys
import tempfile
import time
from abc import ABC, abstractmethod
from pathlib import Path

import httpx

from bench.harness.procs import (
    command_name,
    descendants,
    listening_pid,
    process_ticks,
)
from bench.harness.wire import RedisWire, SocketioWire, Wire, YtmakerWire
from ytmaker_dev.kafka import LocalKafka
from ytmaker_dev.kafka.files import SCRAM_ADMIN
from ytmaker_dev.ports import free_port
from ytmaker_gateway.auth import TokenConfig, mint_token

ROOT = Path(__file__).resolve().parents[2]
STAGE_SERVICES = frozenset({"script", "assets", "render", "upload"})
STARTED = re.compile(r"started\s+(\S+)\s+pid\s+(\d+)")
KAFKA_AT = re.compile(r"Kafka (?:at|already runs at) (\S+)")


class StackFailed(RuntimeError):
    """A target did not start or stopped by itself; the message says what it printed."""


class Stack(ABC):
    name: str
    base_url = ""

    @abstractmethod
    async def start(self) -> None: ...

    @abstractmethod
    async def stop(self) -> None: ...

    @abstractmethod
    def processes(self) -> dict[str, int]:
        """label → pid of every process of the target (what its CPU is the sum of)."""

    @abstractmethod
    def wire(self, owner: str) -> Wire: ...

    def producer_env(self) -> dict[str, str]:
        """What the target's publisher needs in its environment."""
        return {}


async def spawn(*args: str, env: dict[str, str], log: Path) -> asyncio.subprocess.Process:
    with log.open("ab") as out:
        return await asyncio.create_subprocess_exec(
            *args,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=True,
            cwd=ROOT,
        )


async def stop(proc: asyncio.subprocess.Process | None, grace: float = 30.0) -> None:
    if proc is None or proc.returncode is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(proc.wait(), grace)
    except TimeoutError:
        proc.kill()
        await proc.wait()


async def wait_http(url: str, proc: asyncio.subprocess.Process, what: str, log: Path) -> None:
    deadline = time.monotonic() + 120
    async with httpx.AsyncClient() as http:
        while True:
            if proc.returncode is not None:
                raise StackFailed(f"{what} exited with {proc.returncode}: {_tail(log)}")
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get(url, timeout=2)).status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise StackFailed(f"{what} did not answer {url}: {_tail(log)}")
            await asyncio.sleep(0.2)


def _tail(path: Path, lines: int = 20) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return ""


class YtmakerStack(Stack):
    name = "ytmaker"

    def __init__(
        self, work: Path, services: list[str] | None = None, *, kafka_users: bool = False
    ) -> None:
        self.work = work
        self.var = work / "ytmaker-var"
        self.services = services or default_services()
        self.prefix = f"bench-{secrets.token_hex(5)}."
        self.port = free_port()
        self.progress_port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.tokens = TokenConfig(secret=secrets.token_urlsafe(32))
        self.bootstrap = ""
        self.pids: dict[str, int] = {}
        self.output: list[str] = []
        self.restarts: list[str] = []
        self.proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self.kafka_users = kafka_users
        self.kafka_password = secrets.token_urlsafe(24)
        self.external_broker = bool(os.environ.get("KAFKA_BOOTSTRAP_SERVERS")) and not kafka_users
        self.kafka_ports = (free_port(), free_port())  # for a broker run_local starts
        self._broker_pid: int | None = None

    def env(self) -> dict[str, str]:
        env = {
            **os.environ,
            "YTMAKER_VAR_DIR": str(self.var),
            "YTMAKER_TOPIC_PREFIX": self.prefix,
            "YTMAKER_PORT": str(self.port),
            "YTMAKER_PROGRESS_HTTP_PORT": str(self.progress_port),
            "YTMAKER_PROGRESS_URL": f"http://127.0.0.1:{self.progress_port}",
            "YTMAKER_JWT_SECRET": self.tokens.secret or "",
            "YTMAKER_INTERNAL_TOKEN": secrets.token_urlsafe(32),
            # The load generator is one user per scenario with up to 1,000 sockets; the
            # per-user cap (50) is for people, not for it.
            "YTMAKER_MAX_CONNECTIONS_PER_USER": "100000",
        }
        if not self.external_broker:  # run_local starts a broker: on ports of its own
            env["YTMAKER_KAFKA_PORT"] = str(self.kafka_ports[0])
            env["YTMAKER_KAFKA_CONTROLLER_PORT"] = str(self.kafka_ports[1])
        return env | self.sign_in()

    def sign_in(self) -> dict[str, str]:
        """With `kafka_users`, the environment by which a client signs in to run_local's broker
        (its super user; the password is given to run_local, which formats the broker with it)."""
        if not self.kafka_users:
            return {}
        broker = LocalKafka(
            self.var / "kafka-users",  # run_local's `local_broker`
            port=self.kafka_ports[0],
            controller_port=self.kafka_ports[1],
            honour_env=False,
            scram_users={SCRAM_ADMIN: self.kafka_password},
            tls=True,
        )
        env = broker.client_env()
        del env["KAFKA_BOOTSTRAP_SERVERS"]
        return env

    def token(self, user: str) -> str:
        return str(mint_token(self.tokens, user, ttl_s=24 * 3600))

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(ROOT / "scripts" / "run_local.py"),
            "--services",
            ",".join(self.services),
            "--no-sample",
            *(["--kafka-users"] if self.kafka_users else []),
            env=self.env(),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
        self._reader = asyncio.create_task(self._read_output())
        deadline = time.monotonic() + 300
        while not any("ytmaker is running" in line for line in self.output):
            if self.proc.returncode is not None or time.monotonic() > deadline:
                raise StackFailed("run_local did not start:\n" + "\n".join(self.output[-30:]))
            await asyncio.sleep(0.2)
        log = self.var / "logs" / "gateway.log"
        await wait_http(f"{self.base_url}/readyz", self.proc, "the gateway", log)

    async def _read_output(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        async for raw in self.proc.stdout:
            line = raw.decode(errors="replace").rstrip()
            self.output.append(line)
            if found := STARTED.search(line):
                if found.group(1) in self.pids:
                    self.restarts.append(line.strip())
                self.pids[found.group(1)] = int(found.group(2))
            elif found := KAFKA_AT.search(line):
                self.bootstrap = found.group(1)
            elif "exited with" in line:
                self.restarts.append(line.strip())

    def processes(self) -> dict[str, int]:
        if self.proc is None or self.proc.returncode is not None:
            return {}
        found = {"run_local": self.proc.pid}
        broker = self.broker_pid()
        if broker is not None:
            found["kafka"] = broker
        found.update(self.pids)
        known = set(found.values())
        for pid in descendants(self.proc.pid):
            if pid not in known:
                found[f"{command_name(pid)}-{pid}"] = pid
        return found

    def broker_pid(self) -> int | None:
        """The process listening on the bootstrap port (found once, again if it is gone)."""
        if self._broker_pid is None or process_ticks(self._broker_pid) is None:
            port = int(self.bootstrap.split(",")[0].rsplit(":", 1)[1]) if self.bootstrap else 0
            self._broker_pid = listening_pid(port) if port else None
        return self._broker_pid

    def wire(self, owner: str) -> Wire:
        return YtmakerWire(self.base_url.replace("http", "ws", 1), self.token(owner))

    def producer_env(self) -> dict[str, str]:
        return {
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "YTMAKER_TOPIC_PREFIX": self.prefix,
            **self.sign_in(),
        }

    async def stop(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
        await stop(self.proc, grace=90)
        if self.external_broker and self.bootstrap:
            from ytmaker_shared.kafka import delete_topics
            from ytmaker_shared.settings import ServiceSettings

            settings = ServiceSettings(
                kafka_bootstrap_servers=self.bootstrap, topic_prefix=self.prefix
            )
            with contextlib.suppress(Exception):
                await delete_topics(settings)


def default_services() -> list[str]:
    """Every service of this checkout but the pipeline's stage workers: run_local starts
    every process of each (`--services` takes service names)."""
    names = [
        d.name
        for d in (ROOT / "services").iterdir()
        if d.name not in STAGE_SERVICES and (d / "src" / f"ytmaker_{d.name}").is_dir()
    ]
    return sorted(names, key=lambda name: (name == "gateway", name))  # make run's order


class RedisStack(Stack):
    """The Task-012 design: redis-server and the FastAPI server; `database` gives it the
    design's project rows (SQLite, `redis`), without them it only delivers (`redis-nodb`)."""

    def __init__(self, work: Path, *, database: bool = True) -> None:
        self.name = "redis" if database else "redis-nodb"
        self.work = work
        self.database_url = f"sqlite:///{work / 'redis-design.sqlite3'}" if database else ""
        self.redis_port = free_port()
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.redis: asyncio.subprocess.Process | None = None
        self.server: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        server = shutil.which("redis-server")
        if server is None:
            raise StackFailed("redis-server is not installed (scripts/apt-packages.txt)")
        log = self.work / f"{self.name}-server.log"
        self.redis = await spawn(
            server,
            "--port",
            str(self.redis_port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--protected-mode",
            "no",
            "--maxclients",
            "20000",
            "--dir",
            str(self.work),
            env=dict(os.environ),
            log=log,
        )
        await self._wait_redis(log)
        log = self.work / f"{self.name}-baseline.log"
        database = ["--database-url", self.database_url] if self.database_url else []
        self.server = await spawn(
            sys.executable,
            "-m",
            "bench.baselines.redis_pubsub",
            "--port",
            str(self.port),
            "--redis-url",
            self.redis_url,
            *database,
            env=dict(os.environ),
            log=log,
        )
        await wait_http(f"{self.base_url}/healthz", self.server, "the Redis baseline", log)

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    async def _wait_redis(self, log: Path) -> None:
        import redis.asyncio as aioredis

        client = aioredis.from_url(self.redis_url)
        deadline = time.monotonic() + 30
        try:
            while True:
                assert self.redis is not None
                if self.redis.returncode is not None:
                    raise StackFailed(f"redis-server exited: {_tail(log)}")
                with contextlib.suppress(Exception):
                    if await client.ping():
                        return
                if time.monotonic() > deadline:
                    raise StackFailed(f"redis-server did not answer: {_tail(log)}")
                await asyncio.sleep(0.1)
        finally:
            await client.aclose()

    def processes(self) -> dict[str, int]:
        return {
            label: proc.pid
            for label, proc in (("redis-server", self.redis), ("fastapi-server", self.server))
            if proc is not None and proc.returncode is None
        }

    def wire(self, owner: str) -> Wire:
        return RedisWire(self.base_url.replace("http", "ws", 1))

    def producer_env(self) -> dict[str, str]:
        database = {"BENCH_REDIS_DATABASE_URL": self.database_url} if self.database_url else {}
        return {"BENCH_REDIS_URL": self.redis_url, **database}

    async def stop(self) -> None:
        await stop(self.server)
        await stop(self.redis)


class SocketioStack(Stack):
    name = "socketio"

    def __init__(self, work: Path) -> None:
        self.work = work
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.token = secrets.token_urlsafe(24)
        self.server: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        log = self.work / "socketio-baseline.log"
        env = {**os.environ, "BENCH_SOCKETIO_PUBLISHER_TOKEN": self.token}
        self.server = await spawn(
            sys.executable,
            "-m",
            "bench.baselines.socketio_rooms",
            "--port",
            str(self.port),
            env=env,
            log=log,
        )
        url = f"{self.base_url}/socket.io/?EIO=4&transport=polling"
        await wait_http(url, self.server, "the Socket.IO baseline", log)

    def processes(self) -> dict[str, int]:
        if self.server is None or self.server.returncode is not None:
            return {}
        return {"socketio-server": self.server.pid}

    def wire(self, owner: str) -> Wire:
        return SocketioWire(self.base_url.replace("http", "ws", 1))

    def producer_env(self) -> dict[str, str]:
        return {
            "BENCH_SOCKETIO_URL": self.base_url.replace("http", "ws", 1),
            "BENCH_SOCKETIO_PUBLISHER_TOKEN": self.token,
        }

    async def stop(self) -> None:
        await stop(self.server)


def make_stack(
    name: str, work: Path, services: list[str] | None, *, kafka_users: bool = False
) -> Stack:
    if name == "ytmaker":
        return YtmakerStack(work, services, kafka_users=kafka_users)
    if name in ("redis", "redis-nodb"):
        return RedisStack(work, database=name == "redis")
    if name == "socketio":
        return SocketioStack(work)
    raise ValueError(f"unknown target {name!r}")


def new_workdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="ytmaker-bench-"))


def prune_workdir(work: Path) -> None:
    """Remove what a run leaves in `work` but its logs (the broker's data and the read model
    of a run with history take gigabytes; Kafka's segments, also `*.log`, live under `data/`)."""
    for path in sorted(work.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        log = path.suffix in (".log", ".out") and "data" not in path.relative_to(work).parts
        if not (log or (path.is_dir() and any(path.iterdir()))):
            if path.is_dir():
                path.rmdir()
            else:
                path.unlink(missing_ok=True)

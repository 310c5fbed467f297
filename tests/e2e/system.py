"""The whole ytmaker system as separate processes (`python -m ytmaker_<service>`), on the test
broker with a topic prefix of its own, for end-to-end tests. Every service is offline (no API
keys); logs go to `<tmp>/logs/<service>.log` and are shown when a test fails."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from tests.support.internal import internal_headers
from tests.support.kafka import unique_name
from ytmaker_dev.layout import PROCESSES, process
from ytmaker_dev.ports import free_port
from ytmaker_shared.kafka import delete_topics
from ytmaker_shared.settings import ServiceSettings

SERVICES = tuple(p.name for p in PROCESSES)  # as `make run` starts them


class System:
    def __init__(self, bootstrap: str, tmp: Path, prefix: str) -> None:
        self.prefix = prefix
        self.tmp = tmp
        self.logs = tmp / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.gateway_port = free_port()
        self.progress_port = free_port()
        self.base = f"http://127.0.0.1:{self.gateway_port}"
        self.progress = f"http://127.0.0.1:{self.progress_port}"
        self.fold_port = free_port()
        #: The fold process's health server (`/readyz`, `/metrics`).
        self.fold = f"http://127.0.0.1:{self.fold_port}"
        self.env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "YTMAKER_TOPIC_PREFIX": prefix,
            "YTMAKER_TOPIC_PARTITIONS": "3",
            "YTMAKER_ARTIFACT_DIR": str(tmp / "artifacts"),
            "YTMAKER_PUBLISH_DIR": str(tmp / "published"),
            "YTMAKER_PROGRESS_DATABASE_URL": f"sqlite:///{tmp / 'progress.db'}",
            "YTMAKER_PROGRESS_HTTP_PORT": str(self.progress_port),
            "YTMAKER_PROGRESS_URL": self.progress,
            "YTMAKER_PORT": str(self.gateway_port),
            "YTMAKER_DEV_ALLOW_ANONYMOUS": "true",
            "YTMAKER_JWT_SECRET": "e2e-secret-0123456789abcdef0123456789",
            "YTMAKER_LOG_LEVEL": "INFO",
        }
        for key in [k for k in self.env if k.endswith("_API_KEY")]:
            del self.env[key]
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str) -> None:
        log = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 - the child keeps it
        env = self.env
        if name == "progress-fold":
            env = {**env, "YTMAKER_HEALTH_PORT": str(self.fold_port)}
        self.procs[name] = subprocess.Popen(
            process(name).command(),
            env=env,
            cwd=self.tmp,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def start_all(self) -> None:
        for name in SERVICES:
            self.start(name)

    def kill(self, name: str) -> None:
        proc = self.procs[name]
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)

    def wait_ready(self, url: str, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            self.check_alive()
            try:
                if (
                    httpx.get(f"{url}/readyz", timeout=2, headers=internal_headers()).status_code
                    == 200
                ):
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"{url} not ready after {timeout}s\n{self.log_tails()}")
            time.sleep(0.2)

    def check_alive(self) -> None:
        dead = {n: p.returncode for n, p in self.procs.items() if p.poll() is not None}
        if dead:
            raise AssertionError(f"services exited: {dead}\n{self.log_tails()}")

    def log_tails(self, lines: int = 25) -> str:
        out = []
        for path in sorted(self.logs.glob("*.log")):
            tail = path.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"--- {path.name} ---\n" + "\n".join(tail))
        return "\n".join(out)


@contextlib.contextmanager
def running_system(bootstrap: str, tmp: Path, name: str, **env: str) -> Iterator[System]:
    """A whole system on topics of its own (`<name>-<hex>.` prefix, `env` on top of the
    defaults), ready; stopped and its topics deleted at the end."""
    system = System(bootstrap, tmp, unique_name(name) + ".")
    system.env.update(env)
    system.start_all()
    try:
        system.wait_ready(system.progress)
        system.wait_ready(system.base)
        yield system
    finally:
        system.stop_all()
        settings = ServiceSettings(kafka_bootstrap_servers=bootstrap, topic_prefix=system.prefix)
        asyncio.run(delete_topics(settings))

"""`make run`: the whole system on this machine, stopped cleanly by Ctrl-C.

Starts the local Kafka broker (or uses KAFKA_BOOTSTRAP_SERVERS), creates the topics, starts
every service that exists as its own process (logs in var/logs/), and once the gateway is
ready submits a sample project with the command line, `ytmaker submit --watch` (docs/cli.md):
the run's live display in the terminal, and the live page's URL.

It is the services' supervisor: a service that exits on its own (a part of it failed, so it
stopped rather than run half-alive) is started again, after a backoff that grows while it
keeps failing. Ctrl-C, SIGTERM or SIGHUP (the terminal closed) stop the services with SIGTERM,
then the broker. One `make run` at a time per `var/` directory: a second one says so and exits.

Options (for benchmarks and tests): `--services a,b` starts only those services,
`--no-sample` submits no sample project, `--kafka-users` starts a broker that signs its clients
in as the manifests' does (SCRAM-SHA-512 over TLS; one super user for every process, a new
broker in `var/kafka-users/` each time); `YTMAKER_VAR_DIR` moves `var/`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx

from ytmaker_dev.kafka import BrokerAlreadyRunningError, LocalKafka
from ytmaker_dev.kafka.files import SCRAM_ADMIN
from ytmaker_dev.layout import PROCESSES, Process, select
from ytmaker_dev.ports import exempt_loopback_from_proxies
from ytmaker_gateway.auth import AuthError, TokenConfig, mint_token
from ytmaker_shared.kafka import ensure_topics
from ytmaker_shared.settings import single_host_partitions

ROOT = Path(__file__).resolve().parents[1]
VAR = Path(os.environ.get("YTMAKER_VAR_DIR") or ROOT / "var").absolute()
STOP_GRACE_S = 20.0
#: Restart backoff: doubles from the first to the last while a service keeps failing; a
#: service that ran this long since its last start is healthy again.
RESTART_FIRST_S, RESTART_MAX_S, HEALTHY_AFTER_S = 1.0, 30.0, 60.0

SAMPLE_TITLE = "How tides work"
SAMPLE_TEXT = (
    "The Moon's gravity pulls on the oceans, raising a bulge of water on the side facing it "
    "and another on the far side. As the Earth turns, each coast passes through both "
    "bulges, so most places see two high tides a day. When the Sun and Moon line up, their "
    "pulls add up and the tides are strongest."
)


def say(text: str) -> None:
    """Print, and never fail: stopping the services matters more than telling about it (the
    terminal or a pipe may be gone when Ctrl-C reached every process of the foreground group)."""
    with contextlib.suppress(OSError):
        print(text, flush=True)


def existing_processes() -> list[Process]:
    """The system's processes (ytmaker_dev.layout) whose service is in this checkout."""
    return [
        p
        for p in PROCESSES
        if (ROOT / "services" / p.service / "src" / f"ytmaker_{p.service}").is_dir()
    ]


def service_env(kafka: dict[str, str]) -> dict[str, str]:
    """The services' environment: this one's, the broker's address and sign-in (`kafka`), and
    the local run's defaults."""
    env = dict(os.environ)
    env.setdefault("YTMAKER_ARTIFACT_DIR", str(VAR / "artifacts"))
    env.setdefault("YTMAKER_PUBLISH_DIR", str(VAR / "published"))
    env.setdefault("YTMAKER_PROGRESS_DATABASE_URL", f"sqlite:///{VAR / 'progress.db'}")
    env.setdefault("YTMAKER_DEV_ALLOW_ANONYMOUS", "true")  # a local run only: see README
    env.setdefault("YTMAKER_JWT_SECRET", secrets.token_urlsafe(32))
    env.setdefault("YTMAKER_INTERNAL_TOKEN", secrets.token_urlsafe(32))
    env.update(kafka)
    return env


@dataclass
class Supervised:
    """One service process and its restart bookkeeping."""

    name: str
    argv: list[str]
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    failures: int = 0  # exits in a row, each within HEALTHY_AFTER_S of its start
    restart_at: float | None = None
    log: IO[bytes] | None = field(default=None, repr=False)

    def start(self) -> None:
        logs = VAR / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        if self.log is None:
            self.log = open(logs / f"{self.name}.log", "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            self.argv,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches us only; we stop them in order
        )
        self.started_at, self.restart_at = time.monotonic(), None
        say(f"  started {self.name:9} pid {self.proc.pid:>7}  log var/logs/{self.name}.log")

    def watch(self, now: float) -> None:
        """Notice an exit and schedule the restart; restart when its time has come."""
        if self.proc is not None and self.proc.poll() is not None:
            code, self.proc = self.proc.returncode, None
            ran = now - self.started_at
            self.failures = self.failures + 1 if ran < HEALTHY_AFTER_S else 1
            delay = min(RESTART_MAX_S, RESTART_FIRST_S * 2 ** (self.failures - 1))
            self.restart_at = now + delay
            say(
                f"  {self.name} exited with {code} after {ran:.0f}s; restarting in {delay:.0f}s "
                f"(see var/logs/{self.name}.log)"
            )
        if self.proc is None and self.restart_at is not None and now >= self.restart_at:
            self.start()


def stop_services(services: list[Supervised]) -> None:
    running = [s for s in services if s.proc is not None and s.proc.poll() is None]
    for service in running:
        assert service.proc is not None
        service.proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_S
    for service in reversed(running):
        assert service.proc is not None
        try:
            service.proc.wait(max(0.1, deadline - time.monotonic()))
            say(f"  stopped {service.name} (exit {service.proc.returncode})")
        except subprocess.TimeoutExpired:
            service.proc.kill()
            service.proc.wait()
            say(f"  killed {service.name}: it did not stop within {STOP_GRACE_S:.0f}s")
    for service in services:
        if service.log is not None:
            service.log.close()


def take_lock() -> IO[str] | None:
    """Hold `var/run.lock` for as long as this process lives; None when another holds it."""
    VAR.mkdir(parents=True, exist_ok=True)
    lock = open(VAR / "run.lock", "a+")  # noqa: SIM115 - held until exit
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        holder = lock.read().strip() or "another process"
        lock.close()
        say(f"ytmaker is already running here ({holder}); stop it first (Ctrl-C in its terminal)")
        return None
    lock.seek(0)
    lock.truncate()
    lock.write(f"pid {os.getpid()}")
    lock.flush()
    return lock


def gateway_url(env: dict[str, str]) -> str:
    return env.get("YTMAKER_URL") or f"http://127.0.0.1:{env.get('YTMAKER_PORT', '8080')}"


def gateway_ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def watch_sample(env: dict[str, str], url: str) -> subprocess.Popen[bytes]:
    """Submit the sample project with `ytmaker submit --watch`: the run is shown live."""
    cli_env = {**env, "YTMAKER_URL": url}
    with contextlib.suppress(AuthError):  # for a gateway without anonymous development access
        cli_env.setdefault(
            "YTMAKER_TOKEN", mint_token(TokenConfig(env.get("YTMAKER_JWT_SECRET")), "dev")
        )
    argv = [sys.executable, "-m", "ytmaker_cli", "submit", "--title", SAMPLE_TITLE]
    argv += ["--segments", "3", "--target-length", "20", "--watch", "-"]
    watch = subprocess.Popen(argv, env=cli_env, stdin=subprocess.PIPE, start_new_session=True)
    assert watch.stdin is not None
    watch.stdin.write(SAMPLE_TEXT.encode())
    watch.stdin.close()
    return watch


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="make run", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--services",
        help="comma-separated processes or services to start (default: all; `progress` is "
        "both of its processes)",
    )
    parser.add_argument("--no-sample", action="store_true", help="submit no sample project")
    parser.add_argument(
        "--kafka-users",
        action="store_true",
        help="a broker of its own that signs clients in (SCRAM-SHA-512 over TLS), new each time",
    )
    args = parser.parse_args(argv)
    known = existing_processes()
    args.processes = known
    if args.services:
        try:
            asked = select({n.strip() for n in args.services.split(",") if n.strip()})
        except KeyError as exc:
            parser.error(f"unknown services: {exc.args[0]}")
        args.processes = [p for p in asked if p in known]
    return args


def local_broker(with_users: bool) -> LocalKafka:
    """`make run`'s broker (`var/kafka`), or with users a new one that signs clients in as the
    manifests' Strimzi listener does: one super user, `YTMAKER_KAFKA_PASSWORD` or a random
    password, the local CA in `var/kafka-users/`; never an external cluster."""
    if not with_users:
        return LocalKafka(VAR / "kafka")
    data_dir = VAR / "kafka-users"
    shutil.rmtree(data_dir, ignore_errors=True)  # its users are formatted into the log
    password = os.environ.get("YTMAKER_KAFKA_PASSWORD") or secrets.token_urlsafe(24)
    users = {SCRAM_ADMIN: password}
    return LocalKafka(data_dir, honour_env=False, scram_users=users, tls=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    lock = take_lock()
    if lock is None:
        return 1
    stopping = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)

    os.environ.setdefault("YTMAKER_TOPIC_PARTITIONS", str(single_host_partitions()))
    exempt_loopback_from_proxies(os.environ)
    say("ytmaker: starting Kafka")
    broker = local_broker(args.kafka_users)
    try:
        broker.start()
        owned = not broker.is_external
        how = f"in {broker.last_startup_seconds:.1f}s" if owned else "(external)"
        say(f"  Kafka at {broker.bootstrap_servers} {how}")
    except BrokerAlreadyRunningError:
        owned = False
        say(f"  Kafka already runs at {broker.bootstrap_servers}; using it")
    services: list[Supervised] = []
    watch = None
    try:
        created = asyncio.run(ensure_topics(broker.client_settings()))
        say(f"  topics ready ({len(created)} created)")
        env = service_env(broker.client_env())  # one JWT secret for services and sample
        services = [Supervised(p.name, p.command(), env) for p in args.processes]
        for service in services:
            if not stopping:
                service.start()
        sample = any(p.service == "gateway" for p in args.processes) and not args.no_sample
        url, next_check = gateway_url(env), 0.0
        say("ytmaker is running; Ctrl-C stops everything.")
        while not stopping:
            now = time.monotonic()
            for service in services:
                service.watch(now)
            if sample and now >= next_check:  # once the gateway is ready
                next_check = now + 0.5
                if gateway_ready(url):
                    watch, sample = watch_sample(env, url), False
            if watch is not None and watch.poll() is not None:
                watch = None
            time.sleep(0.2)
    finally:
        say("ytmaker: stopping")
        if watch is not None and watch.poll() is None:
            watch.send_signal(signal.SIGINT)  # as Ctrl-C: the display gives the terminal back
            try:
                watch.wait(5)
            except subprocess.TimeoutExpired:
                watch.kill()
        stop_services(services)
        if owned:
            broker.stop()
            say("  Kafka stopped")
        lock.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

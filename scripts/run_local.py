"""`make run`: the whole system on this machine, stopped cleanly by Ctrl-C.

Starts the local Kafka broker (or uses KAFKA_BOOTSTRAP_SERVERS), creates the topics, starts
every service that exists as its own process (logs in var/logs/), then runs
`python -m ytmaker_gateway.sample`: it submits a sample project, prints the live page's URL
and shows the run's progress in the terminal. Ctrl-C or SIGTERM stops the services with
SIGTERM, then the broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

from ytmaker_shared.devkafka import BrokerAlreadyRunningError, LocalKafka
from ytmaker_shared.kafka import ensure_topics
from ytmaker_shared.settings import ServiceSettings, single_host_partitions

ROOT = Path(__file__).resolve().parents[1]
VAR = ROOT / "var"
#: Start order: the read side first, so that nothing the pipeline writes waits for a reader.
SERVICES = ("progress", "script", "assets", "render", "upload", "gateway")
STOP_GRACE_S = 20.0


def say(text: str) -> None:
    """Print, and never fail: stopping the services matters more than telling about it (the
    terminal or a pipe may be gone when Ctrl-C reached every process of the foreground group)."""
    with contextlib.suppress(OSError):
        print(text, flush=True)


def existing_services() -> list[str]:
    return [
        name
        for name in SERVICES
        if (ROOT / "services" / name / "src" / f"ytmaker_{name}" / "__main__.py").is_file()
    ]


def service_env(bootstrap: str) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("YTMAKER_ARTIFACT_DIR", str(VAR / "artifacts"))
    env.setdefault("YTMAKER_PUBLISH_DIR", str(VAR / "published"))
    env.setdefault("YTMAKER_PROGRESS_DATABASE_URL", f"sqlite:///{VAR / 'progress.db'}")
    env.setdefault("YTMAKER_DEV_ALLOW_ANONYMOUS", "true")  # a local run only: see README
    env.setdefault("YTMAKER_JWT_SECRET", secrets.token_urlsafe(32))
    env["KAFKA_BOOTSTRAP_SERVERS"] = bootstrap
    return env


def start_services(names: list[str], env: dict[str, str]) -> dict[str, subprocess.Popen[bytes]]:
    logs = VAR / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    procs = {}
    for name in names:
        with open(logs / f"{name}.log", "ab") as log:
            procs[name] = subprocess.Popen(
                [sys.executable, "-m", f"ytmaker_{name}"],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches us only; we stop them in order
            )
        say(f"  started {name:9} pid {procs[name].pid:>7}  log var/logs/{name}.log")
    return procs


def stop_services(procs: dict[str, subprocess.Popen[bytes]]) -> None:
    for proc in procs.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_S
    for name, proc in reversed(procs.items()):
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
            say(f"  stopped {name} (exit {proc.returncode})")
        except subprocess.TimeoutExpired:
            proc.kill()
            say(f"  killed {name}: it did not stop within {STOP_GRACE_S:.0f}s")


def main() -> int:
    os.environ.setdefault("YTMAKER_TOPIC_PARTITIONS", str(single_host_partitions()))
    say("ytmaker: starting Kafka")
    broker = LocalKafka(VAR / "kafka")
    try:
        broker.start()
        owned = not broker.is_external
        how = f"in {broker.last_startup_seconds:.1f}s" if owned else "(external)"
        say(f"  Kafka at {broker.bootstrap_servers} {how}")
    except BrokerAlreadyRunningError:
        owned = False
        say(f"  Kafka already runs at {broker.bootstrap_servers}; using it")
    settings = ServiceSettings(kafka_bootstrap_servers=broker.bootstrap_servers)
    created = asyncio.run(ensure_topics(settings))
    say(f"  topics ready ({len(created)} created)")

    names = existing_services()
    env = service_env(broker.bootstrap_servers)  # one JWT secret for the services and sample
    procs = start_services(names, env)
    stopping = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    watch = None
    if "gateway" in names:
        watch = subprocess.Popen(
            [sys.executable, "-m", "ytmaker_gateway.sample"], env=env, start_new_session=True
        )
    say("ytmaker is running; Ctrl-C stops everything.")
    try:
        while not stopping:
            for name, proc in procs.items():
                if proc.poll() is not None:
                    say(f"  {name} exited with {proc.returncode}; see var/logs/{name}.log")
                    stopping = True
            if watch is not None and watch.poll() is not None:
                watch = None
            time.sleep(0.2)
    finally:
        say("ytmaker: stopping")
        if watch is not None and watch.poll() is None:
            watch.terminate()
        stop_services(procs)
        if owned:
            broker.stop()
            say("  Kafka stopped")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

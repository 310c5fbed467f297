"""`make run`'s supervisor (scripts/run_local.py): one per var directory, a crashed service is
started again, and a closed terminal (SIGHUP) stops the services and the broker it started."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ytmaker_dev.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
STARTED = re.compile(r"started ([\w-]+)\s+pid\s+(\d+)")


class Supervisor:
    """A `run_local.py` process whose output is collected line by line."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "scripts" / "run_local.py"), *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            self.lines.append(raw.decode(errors="replace").rstrip())

    def pids(self, name: str) -> list[int]:
        return [int(m[2]) for line in self.lines if (m := STARTED.search(line)) and m[1] == name]

    def wait_for(self, condition: Callable[[], object], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}:\n" + "\n".join(self.lines))
            time.sleep(0.1)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for this purpose: it has exited and waits for its parent.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0]
    except (OSError, IndexError):
        return False
    return state != "Z"


@pytest.fixture
def env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A run of its own: its own var directory and broker ports, only the progress service."""
    e = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"}
    e |= {
        "YTMAKER_VAR_DIR": str(tmp_path / "var"),
        "YTMAKER_KAFKA_PORT": str(free_port()),
        "YTMAKER_KAFKA_CONTROLLER_PORT": str(free_port()),
        "YTMAKER_PROGRESS_HTTP_PORT": "0",
        "YTMAKER_TOPIC_PARTITIONS": "1",
    }
    yield e


def test_one_run_per_directory_restart_on_crash_and_sighup_stops_all(
    env: dict[str, str],
) -> None:
    first = Supervisor(["--services", "progress", "--no-sample"], env)
    try:
        first.wait_for(lambda: "ytmaker is running" in "\n".join(first.lines), 120, "the start")
        broker_pid = int((Path(env["YTMAKER_VAR_DIR"]) / "kafka" / "kafka.pid").read_text())
        [progress] = first.pids("progress")
        [fold] = first.pids("progress-fold")  # `--services progress`: both of its processes

        second = subprocess.run(
            [sys.executable, str(ROOT / "scripts" / "run_local.py"), "--no-sample"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode == 1
        assert "already running" in second.stdout
        assert _alive(progress) and _alive(broker_pid)  # the second run touched nothing

        os.kill(progress, signal.SIGKILL)  # a crash: the supervisor starts it again
        first.wait_for(lambda: len(first.pids("progress")) == 2, 30, "the restart")
        restarted = first.pids("progress")[1]
        assert restarted != progress and _alive(restarted)

        first.proc.send_signal(signal.SIGHUP)  # the terminal went away
        assert first.proc.wait(60) == 0
        deadline = time.monotonic() + 30
        while (_alive(restarted) or _alive(broker_pid)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(restarted), "\n".join(first.lines)
        assert not _alive(fold), "\n".join(first.lines)
        assert not _alive(broker_pid), "\n".join(first.lines)
    finally:
        if first.proc.poll() is None:
            first.proc.kill()


def test_behind_a_proxy_the_sample_is_still_submitted(env: dict[str, str]) -> None:
    """A machine behind a proxy names it in `HTTP(S)_PROXY` (the packages come through it):
    the run's calls to this machine (the gateway's readiness, the command line submitting the
    sample, the gateway asking the read side) must not go to it. Here nothing listens where the
    proxy is said to be, as for a proxy that is not on this machine."""
    nowhere = f"http://127.0.0.1:{free_port()}"
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        env.pop(name.lower(), None)
        env[name] = nowhere if name != "NO_PROXY" else "example.org"
    progress_port = free_port()
    env |= {
        "YTMAKER_PORT": str(free_port()),
        "YTMAKER_PROGRESS_HTTP_PORT": str(progress_port),
        "YTMAKER_PROGRESS_URL": f"http://127.0.0.1:{progress_port}",
    }
    run = Supervisor(["--services", "gateway,progress"], env)
    try:
        run.wait_for(lambda: any("live page:" in line for line in run.lines), 180, "the sample")
    finally:
        run.proc.send_signal(signal.SIGINT)
        try:
            run.proc.wait(60)
        except subprocess.TimeoutExpired:
            run.proc.kill()

"""The harness's handle on its helper processes: a producer per target
(`bench/harness/producer.py`) and ytmaker's log tap (`bench/harness/tap.py`)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


class ProducerFailed(RuntimeError):
    pass


class ProducerProcess:
    """`start()`, then `call(op, ...)` one command at a time, then `stop()`."""

    module = "bench.harness.producer"

    def __init__(self, target: str, env: dict[str, str], log: Path) -> None:
        self.target = target
        self.env = {**os.environ, **env}
        self.log = log
        self.proc: asyncio.subprocess.Process | None = None
        self._lock = asyncio.Lock()
        self._running: str | None = None  # the command the process is doing, if any

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    async def start(self) -> None:
        with self.log.open("ab") as err:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", self.module, self.target,
                env=self.env, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=err, start_new_session=True, limit=64 * 1024 * 1024, cwd=ROOT,
            )  # fmt: skip
        await self._read(timeout=120)

    async def call(self, op: str, timeout: float = 600, **arguments: Any) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdin is not None, "start() first"
        async with self._lock:
            self._running = op  # stays set if this call is cancelled: the process goes on
            self.proc.stdin.write((json.dumps({"op": op, **arguments}) + "\n").encode())
            await self.proc.stdin.drain()
            answer = await self._read(timeout)
            self._running = None
            return answer

    async def _read(self, timeout: float) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdout is not None
        try:
            line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        except TimeoutError:
            raise ProducerFailed(f"{self.module}: no answer in {timeout:.0f}s") from None
        if not line:
            tail = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise ProducerFailed(f"{self.module} {self.target} exited:\n{tail}")
        answer: dict[str, Any] = json.loads(line)
        return answer

    async def stop(self) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        assert self.proc.stdin is not None
        if self._running is not None:
            # A command whose caller gave up (a run stopped mid-phase): the process would read
            # `quit` only once it is done, a phase's length later.
            self.proc.kill()
            await self.proc.wait()
            return
        try:
            self.proc.stdin.write(b'{"op": "quit"}\n')
            await self.proc.stdin.drain()
            await asyncio.wait_for(self.proc.wait(), 30)
        except (TimeoutError, ConnectionError):
            self.proc.kill()
            await self.proc.wait()


class TapProcess(ProducerProcess):
    """ytmaker's log tap: when each update becomes readable in `progress.updates`."""

    module = "bench.harness.tap"

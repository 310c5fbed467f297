"""What the emulators share: fault switches and a uvicorn server on a free port.

Faults are queued per request kind (`faults.inject("generate", Fail(503), Hang(5))`): each
matching request takes the next one; with the queue empty the emulator behaves. Kinds:

- `Fail(status, retry_after=None)`: answer with that status and the API's own error body;
- `Hang(seconds)`: wait that long before answering (the client's timeout fires);
- `Truncate(keep=None)`: cut the JSON the API returns in the middle (for Gemini, the model's
  text inside a valid response, as a model stopped by its token limit does);
- `Flood(total_bytes, status=200)`: answer at once with a body of that many bytes whose
  length is not declared (a broken or hostile endpoint: the client must stop reading at its
  own bound);
- `Drip(every_s, for_s, status=200)`: answer at once, then the body a byte every `every_s`
  seconds for `for_s` seconds (every read inside any per-read timeout, the whole far past a
  total one).

What a `Flood` or `Drip` answer sent is kept in the emulator's `streamed` list (`Streamed`):
the bytes that went out and whether the client read them all (`whole`) or hung up first.

Start a server in the test's event loop (`async with EmulatorServer(app) as server`) or in a
thread for synchronous callers (`with EmulatorServer(app).in_thread() as server`).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI, Request

from ytmaker_dev.ports import free_port


@dataclass(frozen=True)
class Fail:
    status: int
    retry_after: int | None = None


@dataclass(frozen=True)
class Hang:
    seconds: float


@dataclass(frozen=True)
class Truncate:
    keep: int | None = None  # bytes of the JSON to keep; None keeps about half


@dataclass(frozen=True)
class Flood:
    """Answer `status` at once with a body of `total_bytes` whose length is not declared."""

    total_bytes: int
    status: int = 200


@dataclass(frozen=True)
class Drip:
    """Answer `status` at once, then the body a byte every `every_s` seconds for `for_s`."""

    every_s: float
    for_s: float = 60.0
    status: int = 200


Fault = Fail | Hang | Truncate | Flood | Drip


@dataclass
class Streamed:
    """What one `Flood` or `Drip` answer sent: `sent` bytes so far; `ended` once it stopped,
    `whole` if the client took every byte (False: it hung up first)."""

    sent: int = 0
    ended: bool = False
    whole: bool = False


async def streamed_body(
    fault: Flood | Drip, record: Streamed, head: bytes, request: Request
) -> AsyncIterator[bytes]:
    """The body of a `Flood` or `Drip` answer to `request`, `head` first, counted in `record`
    as it goes; it stops when the client hangs up (uvicorn would drop the rest silently)."""
    ends = time.monotonic() + fault.for_s if isinstance(fault, Drip) else 0.0
    piece = head
    try:
        while piece and not await request.is_disconnected():
            yield piece
            record.sent += len(piece)
            if isinstance(fault, Flood):
                piece = b"x" * min(65536, fault.total_bytes - record.sent)
            elif time.monotonic() < ends:
                await asyncio.sleep(fault.every_s)
                piece = b"x"
            else:
                piece = b""
        record.whole = not piece
    finally:
        record.ended = True


class Faults:
    """Queued faults per request kind, and counters of what was asked."""

    def __init__(self) -> None:
        self._queues: dict[str, deque[Fault]] = defaultdict(deque)
        self.requests: dict[str, int] = defaultdict(int)

    def inject(self, kind: str, *faults: Fault) -> None:
        self._queues[kind].extend(faults)

    def take(self, kind: str) -> Fault | None:
        self.requests[kind] += 1
        queue = self._queues[kind]
        return queue.popleft() if queue else None

    def pending(self, kind: str) -> int:
        return len(self._queues[kind])


def truncate(data: bytes, fault: Truncate) -> bytes:
    keep = fault.keep if fault.keep is not None else max(1, len(data) // 2)
    return data[:keep]


class EmulatorServer:
    """Serves a FastAPI app on 127.0.0.1 and a free port; `url` is its base URL. With
    `certificate` (a PEM file holding the key and the certificate chain) it speaks TLS."""

    def __init__(
        self, app: FastAPI, port: int | None = None, certificate: Path | None = None
    ) -> None:
        self.app = app
        self.port = port or free_port()
        self.url = f"{'http' if certificate is None else 'https'}://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            access_log=False,
            lifespan="off",
            ssl_certfile=certificate,
        )
        self._server = uvicorn.Server(config)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> EmulatorServer:
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.01)
        return self

    async def stop(self) -> None:
        self._server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def __aenter__(self) -> EmulatorServer:
        return await self.start()

    async def __aexit__(self, *_: Any) -> None:
        await self.stop()

    @contextlib.contextmanager
    def in_thread(self) -> Iterator[EmulatorServer]:
        started = threading.Event()
        loop = asyncio.new_event_loop()

        async def serve() -> None:
            await self.start()
            started.set()
            assert self._task is not None
            await self._task

        thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
        thread.start()
        if not started.wait(10):
            raise RuntimeError("emulator did not start")
        try:
            yield self
        finally:
            self._server.should_exit = True
            thread.join(10)

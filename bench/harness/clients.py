"""The load generator's WebSocket clients: each subscribes to one task and records every update.

A client records the `seq` of every update it gets (to count what it lost or got twice) and,
for updates made inside the measured window, the latency from `produced_at` to the moment its
frame was read, both on this machine's clock (`time.time()`). A client whose connection
closes without being asked to reconnects at once and resumes where the target lets it (ytmaker
by offset; the baselines cannot). `away(seconds)` disconnects it on purpose for a while.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from array import array
from itertools import pairwise

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from bench.harness.report import Window
from bench.harness.wire import SubscribeRefused, Wire

RETRY_S = 0.2
OPEN_TIMEOUT_S = 60.0


class Client:
    def __init__(self, wire: Wire, task_id: str, window: Window) -> None:
        self.wire = wire
        self.task_id = task_id
        self.window = window
        self.seqs = array("q")  # every bench update received, in arrival order
        self.frames = 0
        self.last_offset: int | None = None
        self.first_arrival: float | None = None  # when the first bench update arrived
        self.ws: ClientConnection | None = None
        self.unexpected_closes: list[int | None] = []
        self.open_failures: list[str] = []
        self.stopped = False
        self._away_until: float | None = None
        self._task: asyncio.Task[None] | None = None
        self._replies: set[asyncio.Future[None]] = set()

    async def open(self, timeout: float = OPEN_TIMEOUT_S) -> None:
        """Connect and subscribe (resuming by offset where the target can), retrying while
        the server refuses for a moment (each refusal is kept in `open_failures`); raises
        the last refusal after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                since = self.last_offset if self.wire.resumes else None
                self.ws, early = await self.wire.open(self.task_id, since)
                break
            except (OSError, SubscribeRefused, ConnectionClosed, TimeoutError) as exc:
                self.open_failures.append(_reason(exc))
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(RETRY_S)
        for frame in early:
            self.handle(frame)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    def handle(self, frame: str) -> None:
        received = time.time()
        self.frames += 1
        parsed = self.wire.parse(frame)
        if parsed is None:
            reply = self.wire.reply(frame)
            if reply is not None and self.ws is not None:
                sending = asyncio.ensure_future(self.ws.send(reply))
                self._replies.add(sending)
                sending.add_done_callback(self._replied)
            return
        seq, produced, offset = parsed
        if offset >= 0:
            self.last_offset = offset
        if seq >= 0:
            if self.first_arrival is None:
                self.first_arrival = received
            self.seqs.append(seq)
            self.window.record(produced, received)

    def _replied(self, sending: asyncio.Future[None]) -> None:
        self._replies.discard(sending)
        if not sending.cancelled():
            sending.exception()  # a reply to a closing socket is lost, and that is fine

    async def _run(self) -> None:
        while not self.stopped:
            assert self.ws is not None
            with contextlib.suppress(ConnectionClosed):
                async for frame in self.ws:
                    self.handle(str(frame))
            if self.stopped:
                return
            if self._away_until is not None:
                await asyncio.sleep(max(0.0, self._away_until - time.time()))
                self._away_until = None
            else:
                self.unexpected_closes.append(self.ws.close_code)
            await self.open()

    async def away(self, seconds: float) -> None:
        """Disconnect now; the client reconnects after `seconds`."""
        self._away_until = time.time() + seconds
        if self.ws is not None:
            await self.ws.close()

    async def close(self) -> None:
        self.stopped = True
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await self.ws.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ConnectionClosed) and exc.rcvd is not None:
        return f"closed {exc.rcvd.code} {exc.rcvd.reason}"
    return repr(exc)[:200]


async def open_all(clients: list[Client], concurrency: int = 50) -> float:
    """Open every client, `concurrency` at a time; returns the seconds it took."""
    started = time.monotonic()
    gate = asyncio.Semaphore(concurrency)

    async def one(client: Client) -> None:
        async with gate:
            await client.open()

    await asyncio.gather(*(one(c) for c in clients))
    for client in clients:
        client.start()
    return time.monotonic() - started


async def close_all(clients: list[Client]) -> None:
    await asyncio.gather(*(c.close() for c in clients))


def count_losses(clients: list[Client], ranges: dict[str, list[int]]) -> dict[str, int]:
    """What the clients got of the updates published to their tasks (`ranges`: task →
    [first, last] seq published): `expected`, `received` (distinct), `lost`, `repeated`
    (received more than once) and `out_of_order` (a seq lower than the one before it)."""
    expected = received = lost = repeated = out_of_order = 0
    for client in clients:
        first, last = ranges.get(client.task_id, [1, 0])
        seen = [s for s in client.seqs if first <= s <= last]
        distinct = set(seen)
        expected += last - first + 1
        received += len(distinct)
        lost += (last - first + 1) - len(distinct)
        repeated += len(seen) - len(distinct)
        out_of_order += sum(1 for a, b in pairwise(seen) if b < a)
    return {
        "expected": expected,
        "received": received,
        "lost": lost,
        "repeated": repeated,
        "out_of_order": out_of_order,
    }

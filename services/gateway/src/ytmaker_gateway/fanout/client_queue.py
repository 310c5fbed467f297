"""A client's bounded outgoing queue and the writer that drains it.

The hub only ever calls `push`, which never blocks: a client that cannot keep up fills its
queue, is marked `overflowed`, and its connection is closed with 1013 by the caller, who sees
`run()` return. Nobody else waits for it. The writer sends what is queued in batches of up to
`batch` messages per wake-up, so a burst costs one wake-up, not one per message; given
`send_held`, it sends all but the last message of a batch that way, and the server writes the
batch to the socket in one call (decision 0049).

Given `write_now` (the gateway's own WebSocket protocol offers it, api/wsprotocol.py), the queue
does not wait for its writer: what is pushed while the writer is idle is written by a callback
that runs once the pusher's step is over (the hub's whole batch of records), all of it in one
call, without the writer's wake-up or the ASGI `send` chain per message (decision 0101). When
`write_now` cannot take them (the socket's buffer is full), the writer sends them as above,
waiting for the socket.

A replay is the one producer that waits: `room()` holds it until the writer has made space
below a high-water mark, so a replay of any length moves at the pace the client reads and
leaves the rest of the queue for live updates (docs/decisions/0040-paged-replay.md).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable

from ytmaker_gateway import metrics

Send = Callable[[str], Awaitable[None]]
#: Writes messages to the socket at once, in order; False (nothing written) when it cannot.
WriteNow = Callable[[list[str]], bool]


class ClientQueue:
    def __init__(
        self,
        send: Send,
        *,
        maxsize: int,
        batch: int = 64,
        send_held: Send | None = None,
        write_now: WriteNow | None = None,
    ) -> None:
        """`send` writes a message to the socket; `send_held`, if given, hands one to the
        server to be written with the next `send`; `write_now`, if given, writes messages
        without waiting (see the module's docstring)."""
        self._send = send
        self._send_held = send_held
        self._write_now = write_now
        self._writing = False  # the writer has a batch in hand: it goes first
        self._flush_soon = False  # `_flush_now` is scheduled
        self._maxsize = maxsize
        self._batch = batch
        self._queue: deque[tuple[str, float | None]] = deque()
        self._wake = asyncio.Event()
        self._progress = asyncio.Event()  # set whenever the writer sent something or stopped
        self.overflowed = False
        self.closed = False
        self.sent = 0

    def __len__(self) -> int:
        return len(self._queue)

    def queued(self) -> list[str]:
        """The messages waiting to be written, oldest first."""
        return [item[0] for item in self._queue]

    def push(self, text: str, occurred_at: float | None = None) -> bool:
        """Queue one message; False (and `overflowed`) when the queue is full or closed.

        For an update, `occurred_at` (epoch seconds) is the time of the event behind it: the
        latency to the write goes to the metrics.
        """
        if self.closed or self.overflowed:
            return False
        if len(self._queue) >= self._maxsize:
            self.overflowed = True
            self._wake.set()
            return False
        self._queue.append((text, occurred_at))
        if self._write_now is None or self._writing:
            self._wake.set()
        elif not self._flush_soon:
            self._flush_soon = True
            asyncio.get_running_loop().call_soon(self._flush_now)
        return True

    def _flush_now(self) -> None:
        """Write what is queued through `write_now`, up to `batch` messages a call; what it
        cannot take goes to the writer."""
        self._flush_soon = False
        if self.closed or self.overflowed:
            self._wake.set()  # the writer stops
            return
        if self._writing or not self._queue:
            return  # the writer sends what is left after its batch
        assert self._write_now is not None
        batch = [self._queue[n] for n in range(min(self._batch, len(self._queue)))]
        try:
            written = self._write_now([item[0] for item in batch])
        except Exception:  # a broken socket: the writer meets it through ASGI and ends
            written = False
        if not written:
            self._wake.set()
            return
        for _ in batch:
            self._queue.popleft()
        for _, occurred_at in batch:
            _written(occurred_at)
        self.sent += len(batch)
        metrics.MESSAGES_SENT.inc(len(batch))
        self._progress.set()
        if self._queue:
            self._flush_soon = True
            asyncio.get_running_loop().call_soon(self._flush_now)

    @property
    def maxsize(self) -> int:
        return self._maxsize

    def overflow(self) -> None:
        """Mark the client as unable to keep up (e.g. its replay buffer grew too long)."""
        self.overflowed = True
        self._wake.set()
        self._progress.set()

    def close(self) -> None:
        """Stop the writer after what it is sending now; queued messages are dropped."""
        self.closed = True
        self._wake.set()
        self._progress.set()

    async def room(self, needed: int, *, high_water: int, stall_s: float) -> bool:
        """Wait until `needed` more messages fit below `high_water` queued ones (or the queue
        is empty). False when the queue is closed or overflowed, or when the writer sent
        nothing for `stall_s` while waited for: the client does not read, and the queue is
        then marked overflowed (its connection closes with 1013 and resumes by offset)."""
        while self._queue and len(self._queue) + needed > high_water:
            if self.closed or self.overflowed:
                return False
            self._progress.clear()
            sent = self.sent
            try:
                # Not asyncio.wait_for: on Python 3.11 it can swallow a cancellation that
                # comes as the event is set (the connection closing), and the replay went on.
                async with asyncio.timeout(stall_s):
                    await self._progress.wait()
            except TimeoutError:
                if self.sent == sent:
                    self.overflow()
                    return False
        return not (self.closed or self.overflowed)

    async def run(self) -> None:
        """Write queued messages until closed or overflowed; raises what `send` raises."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self.closed or self.overflowed:
                self._progress.set()
                return
            sent = 0
            self._writing = True
            try:
                sent = await self._write_batch()
                if self.closed or self.overflowed:
                    return
            finally:  # counted once per batch: a replay writes thousands
                self._writing = False
                self.sent += sent
                metrics.MESSAGES_SENT.inc(sent)
                self._progress.set()
            if self._queue:
                self._wake.set()

    async def _write_batch(self) -> int:
        """Send up to `batch` queued messages; how many reached the socket. A held message
        counts as delivered once the message after it is sent; what was not handed to the
        server when this stops stays queued (for `flush`)."""
        batch = [self._queue.popleft() for _ in range(min(self._batch, len(self._queue)))]
        handed = written = 0
        try:
            for text, *_ in batch:
                handed += 1
                if self._send_held is not None and handed < len(batch):
                    await self._send_held(text)
                    continue
                await self._send(text)
                for _, occurred_at in batch[written:handed]:
                    _written(occurred_at)
                written = handed
                if self.closed or self.overflowed:
                    break
        finally:
            self._queue.extendleft(reversed(batch[handed:]))
        return written

    async def flush(self, timeout_s: float) -> None:
        """Write what is still queued (the writer task must have stopped), then close."""
        try:
            async with asyncio.timeout(timeout_s):
                while self._queue:
                    await self._send(self._queue.popleft()[0])
        finally:
            self.close()


def _written(occurred_at: float | None) -> None:
    """An update reached the socket: its latency from the event goes to the metrics."""
    if occurred_at is not None:
        metrics.DELIVERY_LATENCY.observe(max(0.0, time.time() - occurred_at))

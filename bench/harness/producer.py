"""The load generator's producer: a process of its own per target, so that making events is
never delayed by the clients' work (and its CPU is counted apart).

    python -m bench.harness.producer TARGET    (driven by `ProducerProcess`, JSON lines)

Commands on stdin, one JSON object a line; one answer line each on stdout:
- `{"op": "prepare", "owner", "tasks"}` → `{"ok": true}`
- `{"op": "stream", "tasks", "rate", "seconds", "start_at"}`: from `start_at` (epoch seconds)
  publish `rate` updates per second, round-robin over `tasks`, for `seconds` →
  `{"sent", "errors", "ranges": {task: [first_seq, last_seq]}, "behind_ms"}` (`behind_ms`: how
  far the producer fell behind its schedule at worst)
- `{"op": "burst", "task", "count"}` → `{"first", "last", "seconds"}`
- `{"op": "fill", "owner", "tasks", "updates_per_task"}` (ytmaker) → `{"events", "seconds"}`
- `{"op": "quit"}`
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

from bench.harness.publishers import Publisher, YtmakerPublisher, make_publisher


class Streamer:
    def __init__(self, publisher: Publisher) -> None:
        self.publisher = publisher
        self.seq: dict[str, int] = {}  # the last seq published per task, for the whole run
        self.errors = 0
        self._pending: set[asyncio.Future[None]] = set()
        self._last: dict[str, asyncio.Future[None]] = {}  # each task's latest publish

    def _next(self, task_id: str) -> int:
        self.seq[task_id] = self.seq.get(task_id, 0) + 1
        return self.seq[task_id]

    def _publish(self, task_id: str, seq: int) -> None:
        """Publish after the task's previous publish completed: one worker per task, as a
        stage awaits each send (and a Celery task each PUBLISH) before its next report."""
        future = asyncio.ensure_future(self._after(self._last.get(task_id), task_id, seq))
        self._last[task_id] = future
        self._pending.add(future)
        future.add_done_callback(self._done)

    async def _after(self, previous: asyncio.Future[None] | None, task_id: str, seq: int) -> None:
        if previous is not None and not previous.done():
            await asyncio.wait([previous])
        await self.publisher.publish(task_id, seq)

    def _done(self, future: asyncio.Future[None]) -> None:
        self._pending.discard(future)
        if not future.cancelled() and future.exception() is not None:
            self.errors += 1
            if self.errors <= 3:
                print(f"publish failed: {future.exception()!r}", file=sys.stderr, flush=True)

    async def stream(
        self, tasks: list[str], rate: float, seconds: float, start_at: float
    ) -> dict[str, Any]:
        total = int(rate * seconds)
        first = {t: self.seq.get(t, 0) + 1 for t in tasks}
        await asyncio.sleep(max(0.0, start_at - time.time()))
        errors_before, behind, sent = self.errors, 0.0, 0
        while sent < total:
            now = time.time()
            due = min(total, int((now - start_at) * rate) + 1)
            behind = max(behind, now - (start_at + sent / rate))
            while sent < due:
                task_id = tasks[sent % len(tasks)]
                self._publish(task_id, self._next(task_id))
                sent += 1
            await asyncio.sleep(max(0.0, start_at + sent / rate - time.time()))
        if self._pending:
            await asyncio.wait(set(self._pending))
        ranges = {t: [first[t], self.seq[t]] for t in tasks if self.seq.get(t, 0) >= first[t]}
        return {
            "sent": sent,
            "errors": self.errors - errors_before,
            "ranges": ranges,
            "behind_ms": round(1000 * behind, 1),
        }

    async def burst(self, task_id: str, count: int) -> dict[str, Any]:
        first = self.seq.get(task_id, 0) + 1
        self.seq[task_id] = first + count - 1
        started = time.monotonic()
        await self.publisher.burst(task_id, range(first, first + count))
        return {"first": first, "last": first + count - 1, "seconds": time.monotonic() - started}


async def serve(target: str) -> None:
    publisher = make_publisher(target)
    await publisher.start()
    streamer = Streamer(publisher)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    answer({"ready": True})
    try:
        while line := await reader.readline():
            command = json.loads(line)
            op = command.pop("op")
            if op == "quit":
                break
            answer(await run(op, command, publisher, streamer))
    finally:
        await publisher.stop()


async def run(
    op: str, command: dict[str, Any], publisher: Publisher, streamer: Streamer
) -> dict[str, Any]:
    if op == "prepare":
        await publisher.prepare(command["owner"], command["tasks"])
        return {"ok": True}
    if op == "stream":
        return await streamer.stream(
            command["tasks"], command["rate"], command["seconds"], command["start_at"]
        )
    if op == "burst":
        return await streamer.burst(command["task"], command["count"])
    if op == "fill":
        if not isinstance(publisher, YtmakerPublisher):
            raise ValueError("only ytmaker has a history to fill")
        from bench.harness.history import fill

        return await fill(
            publisher, command["owner"], command["tasks"], command["updates_per_task"]
        )
    raise ValueError(f"unknown op {op!r}")


def answer(value: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(value) + "\n")
    sys.stdout.flush()


def main() -> None:
    import uvloop

    uvloop.run(serve(sys.argv[1]))


if __name__ == "__main__":
    main()

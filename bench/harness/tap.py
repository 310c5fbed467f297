"""ytmaker's log tap: a process that reads `progress.updates` like a gateway would and notes,
for every update made from a bench `stage.progress` event, how long after the event it became
readable in the log; and for every such event, how long after it was made it became readable in
its stage topic (`pipeline.script`, where the bench's publisher sends it). With the clients'
figure it splits ytmaker's latency in three hops: event → the stage topic (the stage's
producer and the broker), → update in the log (the fold and the broker), and log → client (the
gateway and the socket).

    python -m bench.harness.tap ytmaker   (driven by `TapProcess`, JSON lines like the producer)

It reads `read_uncommitted`: the moment any reader of the log can have the update. A gateway
that reads `read_committed` waits for the fold's commit on top; that wait then shows in the
second hop. Commands: `{"op": "window", "start", "end"}` starts collecting the events and
updates whose event occurred in [start, end); `{"op": "report"}` answers their latency
summaries (ms) as `{"input": ..., "log": ...}`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from datetime import datetime
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer

from bench.harness.report import Window
from ytmaker_shared.kafka.connection import aiokafka_connection
from ytmaker_shared.settings import ServiceSettings
from ytmaker_shared.topics import Topic


class Tap:
    def __init__(self) -> None:
        self.settings = ServiceSettings()  # the broker, its sign-in, YTMAKER_TOPIC_PREFIX
        self.latencies = Window()  # event → its update readable in progress.updates
        self.inputs = Window()  # event → readable in its stage topic
        self.input_topic = self.settings.topics.name(Topic.SCRIPT)
        self.consumer = AIOKafkaConsumer(
            self.settings.topics.name(Topic.PROGRESS_UPDATES),
            self.input_topic,
            **aiokafka_connection(self.settings),
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="latest",
            isolation_level="read_uncommitted",
            fetch_max_wait_ms=100,
        )

    async def run(self) -> None:
        await self.consumer.start()
        try:
            while True:
                batches = await self.consumer.getmany(timeout_ms=200, max_records=5000)
                received = time.time()
                for tp, records in batches.items():
                    # an event names its type in `type`, its update in `event_type`
                    if tp.topic == self.input_topic:
                        kind, latencies = "type", self.inputs
                    else:
                        kind, latencies = "event_type", self.latencies
                    for record in records:
                        self._note(record.value, kind, latencies, received)
        finally:
            await self.consumer.stop()

    def _note(self, value: bytes | None, kind: str, latencies: Window, received: float) -> None:
        """Note when a bench `stage.progress` event (or its update) became readable."""
        if value is None or b'"stage.progress"' not in value:
            return
        record = orjson.loads(value)
        if record.get(kind) != "stage.progress":
            return
        latencies.record(datetime.fromisoformat(record["occurred_at"]).timestamp(), received)


async def serve() -> None:
    tap = Tap()
    reading = asyncio.create_task(tap.run())
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    answer({"ready": True})
    try:
        while line := await reader.readline():
            command: dict[str, Any] = json.loads(line)
            if command["op"] == "quit":
                break
            if command["op"] == "window":
                tap.latencies = Window(command["start"], command["end"])
                tap.inputs = Window(command["start"], command["end"])
                answer({"ok": True})
            elif command["op"] == "report":
                answer({"input": tap.inputs.summary(), "log": tap.latencies.summary()})
            else:
                answer({"error": f"unknown op {command['op']!r}"})
    finally:
        reading.cancel()
        with contextlib.suppress(BaseException):
            await reading


def answer(value: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(value) + "\n")
    sys.stdout.flush()


def main() -> None:
    import uvloop

    uvloop.run(serve())


if __name__ == "__main__":
    main()

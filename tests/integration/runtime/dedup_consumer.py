"""A consumer process for the at-least-once test: `python dedup_consumer.py DB GROUP`.

Its handler records every delivery, and applies each event once, keyed on `event_id`, in the
same SQLite transaction as nothing else can see: the durable effect. With YTMAKER_TEST_KILL_ON
set to an event_id, the process kills itself with SIGKILL right after applying that event the
first time: after the effect, before the commit.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys

from ytmaker_shared.events import Event
from ytmaker_shared.kafka import ConsumerLoop, EventProducer
from ytmaker_shared.kafka.consumer import Record
from ytmaker_shared.settings import ServiceSettings
from ytmaker_shared.topics import Topic


def open_db(path: str) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("CREATE TABLE IF NOT EXISTS deliveries (event_id TEXT, offset INTEGER)")
    db.execute("CREATE TABLE IF NOT EXISTS applied (event_id TEXT PRIMARY KEY, n INTEGER)")
    return db


async def main(db_path: str, group: str) -> None:
    settings = ServiceSettings()
    db = open_db(db_path)
    kill_on = os.environ.get("YTMAKER_TEST_KILL_ON")

    async def handle(event: Event, record: Record) -> None:
        db.execute("INSERT INTO deliveries VALUES (?, ?)", (event.event_id, record.offset))
        with db:
            db.execute("BEGIN")
            seen = db.execute("SELECT 1 FROM applied WHERE event_id = ?", (event.event_id,))
            if seen.fetchone() is None:
                db.execute("INSERT INTO applied VALUES (?, 1)", (event.event_id,))
        if event.event_id == kill_on:
            os.kill(os.getpid(), signal.SIGKILL)

    async with EventProducer(settings, "dedup-test") as producer:
        loop = ConsumerLoop(
            settings,
            service="dedup-test",
            group_id=group,
            topics=[Topic.TASKS],
            handler=handle,
            producer=producer,
        )
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, loop.stop)
        await loop.run()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))

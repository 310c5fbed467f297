"""Rebuild a read model by replaying the topics from the beginning, and compare it with the
live one: the log is the source of truth, the database a projection."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import Iterator
from typing import Any

from ytmaker_progress.readmodel.store import Store
from ytmaker_progress.readmodel.writer import StoreProcess
from ytmaker_progress.runners.sink import Sink
from ytmaker_progress.settings import ProgressSettings

log = logging.getLogger(__name__)


class NotEmpty(RuntimeError):
    """A rebuild goes into a fresh database only."""


@contextlib.contextmanager
def _no_cyclic_collection() -> Iterator[None]:
    """Pause the cyclic garbage collector for a bulk load. Every update makes a dozen objects,
    so a collection comes every few hundred updates and scans the whole growing batch: a
    quarter of the rebuild's time. Rows are plain dicts and lists, freed by reference
    counting; whatever cycles remain are collected once at the end."""
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.collect()


async def rebuild(settings: ProgressSettings, url: str) -> tuple[Store, int, float]:
    """Replay `progress.updates` and `pipeline.tasks` into the empty database at `url` until
    it has caught up with the end of the topics. Returns the store, the updates stored and
    the seconds it took; the caller closes the store. Raises NotEmpty.

    The rows are written by a process of their own (`StoreProcess`, decision 0087) while this
    one reads and parses the next batch."""
    started = time.perf_counter()
    writer = await asyncio.to_thread(StoreProcess, url)
    try:
        if await asyncio.to_thread(writer.positions):
            raise NotEmpty(f"{url} already holds a read model")
        sink = Sink(settings, writer, None, batch_size=20_000)
        stopping = asyncio.Event()
        with _no_cyclic_collection():
            running = asyncio.create_task(sink.run(stopping))
            caught_up = asyncio.create_task(sink.caught_up.wait())
            await asyncio.wait({running, caught_up}, return_when=asyncio.FIRST_COMPLETED)
            caught_up.cancel()
            stopping.set()
            await running
        await asyncio.to_thread(writer.finish_bulk)
    finally:
        await asyncio.to_thread(writer.close)  # every transaction is written
    seconds = time.perf_counter() - started
    # A fresh engine serves it, with the usual pragmas.
    return await asyncio.to_thread(Store, url), sink.stored, seconds


def differences(live: Store, rebuilt: Store, *, limit: int = 20) -> list[str]:
    """What differs between two read models, ignoring the histories deleted on purpose."""
    a, b = live.dump(), rebuilt.dump()
    deleted = {row.task_id for row in _floors(live)}
    out: list[str] = []
    for table in a:
        rows_a, rows_b = set(a[table]), set(b[table])
        if table == "history":
            rows_b = {r for r in rows_b if r[0] not in deleted}
        for row in sorted(rows_a - rows_b, key=repr)[:limit]:
            out.append(f"{table}: only live: {row!r:.300}")
        for row in sorted(rows_b - rows_a, key=repr)[:limit]:
            out.append(f"{table}: only rebuilt: {row!r:.300}")
    return out


def _floors(store: Store) -> list[Any]:
    from sqlalchemy import select

    from ytmaker_progress.readmodel.store import _T

    with store.engine.connect() as conn:
        return list(conn.execute(select(_T.c.task_id).where(_T.c.history_floor >= 0)))


async def rebuild_and_compare(settings: ProgressSettings, into: str, compare: str | None) -> int:
    """The `rebuild` command: exit code 0 when equal (or nothing to compare), 1 otherwise."""
    store, stored, seconds = await rebuild(settings, into)
    print(f"rebuilt {stored} updates into {into} in {seconds:.1f}s")
    try:
        if compare is None:
            return 0
        live = await asyncio.to_thread(Store, compare)
        try:
            diffs = await asyncio.to_thread(differences, live, store)
        finally:
            live.close()
        for line in diffs:
            print(line)
        print("equal" if not diffs else f"{len(diffs)} differences")
        return 0 if not diffs else 1
    finally:
        store.close()

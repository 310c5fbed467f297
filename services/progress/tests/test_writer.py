"""The rebuild's writer process (`StoreProcess`, decision 0087): it stores what an in-process
store stores, reports its errors and its death, and fills without a journal."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from ytmaker_progress.readmodel.rows import Rows, add_update
from ytmaker_progress.readmodel.store import Store
from ytmaker_progress.readmodel.writer import StoreProcess, WriterFailed

from .test_task_rows import update


def batch(first: int, count: int) -> Rows:
    rows = Rows()
    for offset in range(first, first + count):
        stages = {"script": {"status": "running", "attempt": 1, "progress": offset % 100}}
        add_update(rows, offset, "ep", update(f"t-{offset % 3}", stages=stages))
    return rows


def test_the_writer_stores_what_a_store_in_this_process_stores(tmp_path: Path) -> None:
    here, there = (f"sqlite:///{tmp_path / name}.db" for name in ("here", "there"))
    store = Store(here, bulk=True)
    writer = StoreProcess(there)
    try:
        assert writer.positions() == {}
        for first in (0, 50):
            positions = {("updates", 0): (first + 50, "ep")}
            store.write(batch(first, 50), positions)
            writer.write(batch(first, 50), positions)
        assert writer.positions() == {("updates", 0): (100, "ep")}
        store.finish_bulk()
        writer.finish_bulk()
    finally:
        store.close()
        writer.close()
        writer.close()  # twice is harmless
    a, b = Store(here), Store(there)
    try:
        dump = a.dump()
        assert len(dump["history"]) == 100 and len(dump["tasks"]) == 3
        assert dump == b.dump()
        with b.engine.connect() as conn:  # served as usual once the fill is over
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    finally:
        a.close()
        b.close()


def test_a_bulk_fill_keeps_no_journal(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'bulk.db'}", bulk=True)
    try:
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "off"
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 0
    finally:
        store.close()


def test_a_served_store_checkpoints_its_wal_every_10000_pages(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'served.db'}")
    try:
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 10_000
    finally:
        store.close()


def test_a_failed_write_is_raised_here(tmp_path: Path) -> None:
    writer = StoreProcess(f"sqlite:///{tmp_path / 'w.db'}")
    try:
        broken = batch(0, 2)
        del broken.history[0]["status"]
        with pytest.raises(WriterFailed, match="KeyError: 'status'"):
            writer.write(broken, {("updates", 0): (2, "ep")})
        assert writer._process.is_alive()  # it answered; the rebuild decides (it stops)
    finally:
        writer.close()
    assert not writer._process.is_alive()


def test_a_database_that_cannot_be_opened_fails_at_the_start(tmp_path: Path) -> None:
    with pytest.raises(WriterFailed, match="cannot open the read model"):
        StoreProcess(f"sqlite:///{tmp_path / 'no such directory' / 'w.db'}")


def test_a_writer_that_died_is_reported_not_waited_for(tmp_path: Path) -> None:
    writer = StoreProcess(f"sqlite:///{tmp_path / 'w.db'}")
    try:
        pid = writer._process.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(WriterFailed, match="ended"):
            writer.write(batch(0, 2), {("updates", 0): (2, "ep")})
    finally:
        writer.close()


def test_close_waits_for_the_write_in_flight(tmp_path: Path) -> None:
    """A cancelled rebuild closes its writer while a write is still going on in a thread."""
    url = f"sqlite:///{tmp_path / 'w.db'}"
    writer = StoreProcess(url)
    outcome: list[BaseException | None] = []

    def write() -> None:
        try:
            writer.write(batch(0, 20_000), {("updates", 0): (20_000, "ep")})
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=write)
    thread.start()
    deadline = time.monotonic() + 30
    while not writer._lock.locked() and not outcome:
        assert time.monotonic() < deadline, "the write never started"
        time.sleep(0.001)
    writer.close()
    thread.join(timeout=60)
    assert outcome == [None]
    assert not writer._process.is_alive()
    store = Store(url)
    try:
        assert store.positions() == {("updates", 0): (20_000, "ep")}
    finally:
        store.close()

"""A bulk `Store` in a process of its own: the rebuild's writer (decision 0087).

A rebuild parses a million updates and writes them. In one process the two take turns: the
database's work in a thread gives the GIL back at every row, and the parsing thread keeps it
for its whole switch interval, so the writes wait for the parsing and the parsing for the
writes. In a process of its own the database works beside the parsing, on the other core:
the rebuild's batches cross a pipe, pickled (a few µs an update), and `write` returns once
the batch is committed, as `Store.write` does.
"""

from __future__ import annotations

import contextlib
import gc
import multiprocessing
import pickle
import threading
from dataclasses import replace
from multiprocessing.connection import Connection
from typing import Any

from ytmaker_progress.readmodel.rows import Positions, Rows
from ytmaker_progress.readmodel.store import Store


class WriterFailed(RuntimeError):
    """The writer process raised (its error's text) or died."""


class StoreProcess:
    """`StoreProcess(url)` starts a process holding `Store(url, bulk=True)`; `write`,
    `positions` and `finish_bulk` are that store's, one call at a time; `close()` ends the
    process. Blocking calls: run them in a thread from async code (one at a time: a call
    waits for the one in flight, `close` too). Raises WriterFailed."""

    def __init__(self, url: str) -> None:
        self._lock = threading.Lock()
        context = multiprocessing.get_context("spawn")  # nothing of this process's threads
        self._conn, child = context.Pipe()
        self._process = context.Process(
            target=_serve, args=(child, url), name="progress-rebuild-writer", daemon=True
        )
        self._process.start()
        child.close()
        try:
            self._answer()  # the store is open and migrated
        except WriterFailed:
            self.close()
            raise

    def write(self, rows: Rows, positions: Positions) -> None:
        # Without the sink's memory of the stage attempts it wrote (`finished_seen`, up to
        # 100,000 of them, shared by every batch): the write does not read it, and pickling
        # it with each batch made the rebuild of a million updates 67-72 s instead of 46-56.
        self._call("write", replace(rows, finished_seen={}), positions)

    def positions(self) -> Positions:
        positions: Positions = self._call("positions")
        return positions

    def finish_bulk(self) -> None:
        self._call("finish_bulk")

    def close(self) -> None:
        """Close the store and end the process, after the call in flight (a write of a
        cancelled rebuild); safe to call twice."""
        locked = self._lock.acquire(timeout=60)
        try:
            if not self._conn.closed:
                with contextlib.suppress(OSError):
                    self._conn.send_bytes(pickle.dumps(("close", ())))
                self._conn.close()
        finally:
            if locked:
                self._lock.release()
        self._process.join(timeout=30)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()

    def _call(self, method: str, *args: Any) -> Any:
        with self._lock:
            try:
                message = pickle.dumps((method, args), protocol=pickle.HIGHEST_PROTOCOL)
                self._conn.send_bytes(message)
            except OSError as exc:
                raise self._ended(exc) from None
            return self._answer()

    def _answer(self) -> Any:
        try:
            ok, value = pickle.loads(self._conn.recv_bytes())
        except (EOFError, OSError) as exc:
            raise self._ended(exc) from None
        if not ok:
            raise WriterFailed(value)
        return value

    def _ended(self, exc: BaseException) -> WriterFailed:
        self._process.join(timeout=5)
        code = self._process.exitcode
        return WriterFailed(f"the writer process ended (exit code {code}): {exc!r}")


_METHODS = frozenset({"write", "positions", "finish_bulk"})


def _serve(conn: Connection, url: str) -> None:
    """The writer process: answers `ready` once the store is open, then each call with
    `(True, result)` or `(False, error)`, until `close` or the rebuild goes away."""
    gc.disable()  # rows are plain dicts and lists, freed by reference counting
    try:
        store = Store(url, bulk=True)
    except Exception as exc:
        conn.send_bytes(pickle.dumps((False, f"cannot open the read model: {_describe(exc)}")))
        return
    try:
        conn.send_bytes(pickle.dumps((True, None)))
        while True:
            method, args = pickle.loads(conn.recv_bytes())
            if method not in _METHODS:
                break  # `close`
            try:
                answer = (True, getattr(store, method)(*args))
            except Exception as exc:
                answer = (False, _describe(exc))
            conn.send_bytes(pickle.dumps(answer))
    except (EOFError, OSError):  # the rebuild went away
        pass
    finally:
        store.close()


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"

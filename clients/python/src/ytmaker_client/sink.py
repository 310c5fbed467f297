"""Where a subscription's items go, in order: an async iterator, or callbacks.

A subscription made with callbacks calls them from its own task, one item at a time, so a
slow callback delays only its own subscription (never the socket: the gateway would close a
client that stops reading, docs/protocol.md). A subscription without callbacks keeps its items
until the caller iterates. An exception raised by a callback is logged and the stream goes on.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from ytmaker_client.models import Item, Snapshot, TaskState, Update, UpdateType

log = logging.getLogger(__name__)

T = TypeVar("T")
Callback = Callable[[T], Awaitable[None] | None]


@dataclass(frozen=True)
class Callbacks:
    """`on_progress`, `on_status`, `on_error`: updates of those types (`on_error`: a stage
    failed or retries); `on_snapshot`: a state sent instead of a replay (check
    `snapshot.missed`); `on_complete`: the final state of a task that finished (completed,
    failed or cancelled); `on_failure`: the subscription ended with an error (refused, or
    the connection could not be re-made). Each may be a function or a coroutine function."""

    on_progress: Callback[Update] | None = None
    on_status: Callback[Update] | None = None
    on_error: Callback[Update] | None = None
    on_snapshot: Callback[Snapshot] | None = None
    on_complete: Callback[TaskState] | None = None
    on_failure: Callback[BaseException] | None = None

    def any(self) -> bool:
        return any(getattr(self, name) is not None for name in self.__dataclass_fields__)


class _End:
    def __init__(self, error: BaseException | None) -> None:
        self.error = error


class Sink:
    """One subscription's delivery. `push` and `finish` are called by the client; the caller
    iterates (`async for item in sink`) or gets callbacks, and may `await sink.wait()`."""

    def __init__(self, callbacks: Callbacks | None = None) -> None:
        self.callbacks = callbacks if callbacks is not None and callbacks.any() else None
        self._queue: asyncio.Queue[Item | _End] = asyncio.Queue()
        self._finished = False
        self._done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._dispatcher: asyncio.Task[None] | None = None
        if self.callbacks is not None:
            self._dispatcher = asyncio.create_task(self._dispatch(self.callbacks))

    @property
    def finished(self) -> bool:
        return self._finished

    def push(self, item: Item) -> None:
        if not self._finished:
            self._queue.put_nowait(item)

    def finish(self, error: BaseException | None = None) -> None:
        """End the stream (with `error`: it ends by raising it). Later calls are ignored."""
        if not self._finished:
            self._finished = True
            self._queue.put_nowait(_End(error))

    async def wait(self) -> None:
        """Return when the stream has ended and every item was handed out; raises the error
        it ended with."""
        await asyncio.shield(self._done)

    def __aiter__(self) -> Sink:
        if self.callbacks is not None:
            raise TypeError("this subscription delivers to its callbacks; it is not iterable")
        return self

    async def __anext__(self) -> Item:
        if self._done.done():
            raise StopAsyncIteration
        got = await self._queue.get()
        if isinstance(got, _End):
            self._settle(got.error)
            if got.error is not None:
                raise got.error
            raise StopAsyncIteration
        return got

    def _settle(self, error: BaseException | None) -> None:
        if self._done.done():
            return
        if error is None:
            self._done.set_result(None)
        else:
            self._done.set_exception(error)
            self._done.exception()  # retrieved: no "never retrieved" warning if nobody waits

    async def _dispatch(self, callbacks: Callbacks) -> None:
        while True:
            got = await self._queue.get()
            if isinstance(got, _End):
                if got.error is not None:
                    await _call(callbacks.on_failure, got.error)
                self._settle(got.error)
                return
            if isinstance(got, Snapshot):
                await _call(callbacks.on_snapshot, got)
                state = got.state
            else:
                handler = {
                    UpdateType.PROGRESS: callbacks.on_progress,
                    UpdateType.STATUS: callbacks.on_status,
                    UpdateType.ERROR: callbacks.on_error,
                }[got.type]
                await _call(handler, got)
                state = got.state
            if got.terminal and state is not None:
                await _call(callbacks.on_complete, state)


async def _call(callback: Callback[Any] | None, value: Any) -> None:
    if callback is None:
        return
    try:
        result = callback(value)
        if inspect.isawaitable(result):
            await result
    except Exception:
        log.exception("a subscription callback raised; the stream goes on")

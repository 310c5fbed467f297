"""`ProgressClient`: a task's or a project's live progress, every update exactly once and in
order across any number of reconnects (docs/protocol.md; docs/sdk-python.md shows how to use it).

```python
async with ProgressClient("http://127.0.0.1:8080", token) as client:
    async with await client.subscribe_task(task_id) as updates:
        async for item in updates:
            print(item.state.progress, item.state.status)
```
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from ytmaker_client.channel import Channel, TaskStream
from ytmaker_client.errors import ApiError, SubscriptionError
from ytmaker_client.models import Item
from ytmaker_client.options import ClientOptions, ConnectionState, StateChange
from ytmaker_client.protocol import Cursor, ServerMessage
from ytmaker_client.rest import RestClient
from ytmaker_client.sink import Callback, Callbacks, Sink

log = logging.getLogger(__name__)

StateListener = Callable[[StateChange], None]


def ws_base(base_url: str) -> str:
    """`http://host:port` → `ws://host:port` (https → wss)."""
    base = base_url.rstrip("/")
    if base.startswith("https://"):
        return "wss://" + base[len("https://") :]
    if base.startswith("http://"):
        return "ws://" + base[len("http://") :]
    return base


class _Subscription(Sink):
    """What both kinds of subscription share: a `Sink` (iterate it, or get callbacks) that
    can be unsubscribed, also as `async with`."""

    def __init__(self, callbacks: Callbacks | None) -> None:
        super().__init__(callbacks)

    async def unsubscribe(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> _Subscription:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.unsubscribe()


class TaskSubscription(_Subscription):
    """One task's updates. Ends (iteration stops, `on_complete` is called) after the update
    that finishes the task; ends with an error when the gateway refuses it for good or the
    connection cannot be re-made."""

    def __init__(
        self, client: ProgressClient, task_id: str, cursor: Cursor, callbacks: Callbacks | None
    ) -> None:
        super().__init__(callbacks)
        self.task_id = task_id
        self._client = client
        self.stream = TaskStream(task_id, cursor, self)

    @property
    def last_offset(self) -> int | None:
        """The offset of the last update delivered (resume from it with `since=`)."""
        return self.stream.cursor.last

    @property
    def epoch(self) -> str | None:
        return self.stream.cursor.epoch

    def deliver(self, item: Item) -> None:
        self.push(item)

    def stream_ended(self, stream: TaskStream, error: BaseException | None) -> None:
        self.finish(error)

    async def unsubscribe(self) -> None:
        self._client.tasks.remove(self.stream)
        self.finish()


class ProjectSubscription(_Subscription):
    """The updates of every task of a project, each task's once and in order.

    The project's stream (`/api/v1/projects/{id}/progress`) only tells which tasks exist;
    each task is followed on a socket of this subscription's own, resumed by offset like a
    task subscription: tasks that exist when it starts from their current state (a
    `Snapshot`), tasks started later from their first update. A run is let go once its final
    state is delivered; runs beyond the gateway's subscriptions per connection wait for one
    to end (decision 0135). A run the gateway refuses for good is not followed: the
    refusal is logged and kept in `refused`, and the other runs go on. Never ends by itself
    (only when the project is refused, or the connection cannot be re-made)."""

    def __init__(
        self, client: ProgressClient, project_id: str, callbacks: Callbacks | None
    ) -> None:
        super().__init__(callbacks)
        self.project_id = project_id
        self._client = client
        self._known: set[str] = set()
        #: The runs refused for good (task id → the refusal): not followed.
        self.refused: dict[str, SubscriptionError] = {}
        self._relisting: asyncio.Task[None] | None = None
        self._refused_since: float | None = None
        base = ws_base(client.base_url)
        name = f"project:{project_id}"
        self.tasks = Channel(
            f"{base}/api/v1/ws", client.token, client.options, name=name, on_state=client._notify
        )
        self.feed = Channel(
            f"{base}/api/v1/projects/{quote(project_id, safe='')}/progress",
            client.token,
            client.options,
            name=name + ":feed",
            on_state=client._notify,
            on_message=self._feed_message,
            on_connected=self._relist,
            on_refused=self._feed_refused,
            restores_sessions=False,  # a project stream is never restored
        )

    @property
    def task_ids(self) -> set[str]:
        return set(self._known)

    async def start(self) -> None:
        await self.tasks.start()
        await self.feed.start()

    def deliver(self, item: Item) -> None:
        self.push(item)

    def stream_ended(self, stream: TaskStream, error: BaseException | None) -> None:
        if isinstance(error, SubscriptionError):
            self.refused[stream.task_id] = error
            log.warning(
                "project %s: run %s is not followed: %s", self.project_id, stream.task_id, error
            )
        elif error is not None:
            self.finish(error)

    def follow(self, task_id: str, since: int | None) -> None:
        """Follow one more task of the project (no-op for a task already followed)."""
        if task_id in self._known:
            return
        self._known.add(task_id)
        self.tasks.add(TaskStream(task_id, Cursor(since=since), self, waits_for_room=True))

    def _feed_message(self, msg: ServerMessage) -> None:
        if msg.type == "initial":
            state = msg.payload.get("state") or {}
            if isinstance(state, dict) and state.get("task_id"):
                self.follow(str(state["task_id"]), None)
        elif msg.type == "error" and msg.task_id is None:
            log.info("project stream: %s", msg.payload.get("message"))
        elif msg.task_id:
            self.follow(msg.task_id, -1)  # a run that started after we subscribed: all of it

    async def _relist(self) -> None:
        """After every (re)connect of the feed: tasks started while it was down."""
        try:
            view = await self._client.rest.project(self.project_id)
        except ApiError as exc:
            if exc.code != "forbidden":
                log.info("cannot list the project's tasks: %s", exc)
            return
        except Exception as exc:  # the feed will reconnect and list again
            log.info("cannot list the project's tasks: %r", exc)
            return
        self._refused_since = None
        for state in reversed(view.tasks):  # oldest first
            self.follow(state.task_id, None)

    def _feed_refused(self, reason: str) -> bool:
        """A 4403 close: retry within the refusal window (a project created a moment ago),
        then give up."""
        loop = asyncio.get_running_loop()
        if self._refused_since is None:
            self._refused_since = loop.time()
        if loop.time() - self._refused_since < self._client.options.refusal_window:
            return True
        self.finish(SubscriptionError("forbidden", reason, project_id=self.project_id))
        return False

    async def unsubscribe(self) -> None:
        if self in self._client._projects:
            self._client._projects.remove(self)
        await self.feed.close()
        await self.tasks.close()
        self.finish()


class ProgressClient:
    """The live client. `connect()` (or `async with`) opens the socket; the first connection
    must succeed (`AuthenticationError`, `ConnectionLost` otherwise); later drops are
    re-made with backoff and every subscription resumes by offset.

    `base_url` is the gateway's HTTP address (`http://127.0.0.1:8080`); `token` a JWT (None
    where the gateway allows anonymous development access)."""

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        options: ClientOptions | None = None,
        rest: RestClient | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.options = options or ClientOptions()
        self._own_rest = rest is None
        self.rest = rest or RestClient(self.base_url, token, timeout=self.options.http_timeout)
        self._listeners: list[StateListener] = []
        self.tasks = Channel(
            f"{ws_base(self.base_url)}/api/v1/ws",
            token,
            self.options,
            name="tasks",
            on_state=self._notify,
        )
        self._projects: list[ProjectSubscription] = []

    @property
    def state(self) -> ConnectionState:
        """The state of the client's own socket."""
        return self.tasks.state

    def add_state_listener(self, listener: StateListener) -> Callable[[], None]:
        """Call `listener(change)` on every connection-state change (of every socket of this
        client; `change.channel` tells which). Returns a function that removes it."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def _notify(self, change: StateChange) -> None:
        for listener in list(self._listeners):
            try:
                listener(change)
            except Exception:
                log.exception("a connection-state listener raised")

    async def connect(self) -> None:
        await self.tasks.start()

    async def close(self) -> None:
        """Close every socket; open subscriptions end (iteration stops)."""
        for project in list(self._projects):
            await project.unsubscribe()
        await self.tasks.close()
        if self._own_rest:
            await self.rest.aclose()

    async def __aenter__(self) -> ProgressClient:
        await self.connect()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def subscribe_task(
        self,
        task_id: str,
        *,
        since: int | None = -1,
        epoch: str | None = None,
        on_progress: Callback[Any] | None = None,
        on_status: Callback[Any] | None = None,
        on_error: Callback[Any] | None = None,
        on_snapshot: Callback[Any] | None = None,
        on_complete: Callback[Any] | None = None,
        on_failure: Callback[BaseException] | None = None,
    ) -> TaskSubscription:
        """Follow a task. `since`: -1 (default) every update of the run, None the current
        state (a `Snapshot`) then what follows, an offset what comes after it (with the
        `epoch` it belongs to). With callbacks, they are called in order and the
        subscription is not iterable; otherwise iterate it. Raises ValueError when the task
        is already subscribed on this client."""
        callbacks = Callbacks(
            on_progress, on_status, on_error, on_snapshot, on_complete, on_failure
        )
        last = since if since is not None and since >= 0 else None
        cursor = Cursor(since=since, epoch=epoch, last=last)
        subscription = TaskSubscription(self, task_id, cursor, callbacks)
        self.tasks.add(subscription.stream)
        return subscription

    async def subscribe_project(
        self,
        project_id: str,
        *,
        on_progress: Callback[Any] | None = None,
        on_status: Callback[Any] | None = None,
        on_error: Callback[Any] | None = None,
        on_snapshot: Callback[Any] | None = None,
        on_complete: Callback[Any] | None = None,
        on_failure: Callback[BaseException] | None = None,
    ) -> ProjectSubscription:
        """Follow every task of a project (see `ProjectSubscription`)."""
        callbacks = Callbacks(
            on_progress, on_status, on_error, on_snapshot, on_complete, on_failure
        )
        subscription = ProjectSubscription(self, project_id, callbacks)
        self._projects.append(subscription)
        try:
            await subscription.start()
        except BaseException:
            await subscription.unsubscribe()
            raise
        return subscription

"""A blocking facade for scripts and notebooks: the async clients run on an event loop of
their own in a background thread, so it works where a loop already runs (Jupyter) too.

```python
with SyncClient("http://127.0.0.1:8080", token) as yt:
    started = yt.create_project("How tides work", text)
    for item in yt.updates(started.task_id):
        print(item.state.progress)
```
"""

from __future__ import annotations

import asyncio
import os
import queue
import threading
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, Literal, TypeVar

from ytmaker_client.models import (
    ActiveClients,
    ArtifactLink,
    ControlResult,
    History,
    Item,
    ProjectSettings,
    ProjectView,
    Started,
    Stats,
    TaskState,
    TaskStatus,
    WebSocketStats,
)
from ytmaker_client.options import ClientOptions
from ytmaker_client.progress import ProgressClient
from ytmaker_client.rest import ArtifactName, DownloadProgress, RestClient

T = TypeVar("T")


class _End:
    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error


class SyncClient:
    """The REST API and live updates, blocking. Close it (or use `with`) to stop its thread."""

    def __init__(
        self, base_url: str, token: str | None = None, *, options: ClientOptions | None = None
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.options = options or ClientOptions()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="ytmaker-client", daemon=True
        )
        self._thread.start()
        self._rest: RestClient = self._run(self._new_rest())

    async def _new_rest(self) -> RestClient:
        return RestClient(self.base_url, self.token, timeout=self.options.http_timeout)

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def close(self) -> None:
        if self._loop.is_closed():
            return
        self._run(self._rest.aclose())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # --- REST ----------------------------------------------------------------------------

    def create_project(
        self,
        title: str,
        content: str,
        settings: ProjectSettings | dict[str, Any] | None = None,
    ) -> Started:
        return self._run(self._rest.create_project(title, content, settings))

    def start_run(
        self, project_id: str, settings: ProjectSettings | dict[str, Any] | None = None
    ) -> Started:
        return self._run(self._rest.start_run(project_id, settings))

    def project(self, project_id: str) -> ProjectView:
        return self._run(self._rest.project(project_id))

    def runs(
        self,
        *,
        status: TaskStatus | str | None = None,
        project_id: str | None = None,
        limit: int = 100,
        all_users: bool = False,
    ) -> list[TaskState]:
        return self._run(
            self._rest.runs(status=status, project_id=project_id, limit=limit, all_users=all_users)
        )

    def task(self, task_id: str) -> TaskState:
        return self._run(self._rest.task(task_id))

    def cancel(self, task_id: str, reason: str = "") -> ControlResult:
        return self._run(self._rest.cancel(task_id, reason))

    def pause(self, task_id: str, reason: str = "") -> ControlResult:
        return self._run(self._rest.pause(task_id, reason))

    def resume(self, task_id: str, reason: str = "") -> ControlResult:
        return self._run(self._rest.resume(task_id, reason))

    def history(
        self,
        task_id: str,
        *,
        since: int | None = None,
        limit: int = 1000,
        source: Literal["memory", "database"] = "database",
    ) -> History:
        return self._run(self._rest.history(task_id, since=since, limit=limit, source=source))

    def stats(self) -> Stats:
        return self._run(self._rest.stats())

    def delete_history(self, task_id: str) -> None:
        """Clear a finished task's stored history (`conflict` while it runs)."""
        self._run(self._rest.delete_history(task_id))

    def active(self) -> ActiveClients:
        """Operator: connected clients (`RestClient.active`)."""
        return self._run(self._rest.active())

    def websocket_stats(self) -> WebSocketStats:
        """Operator: this instance's clients, messages and reconnects."""
        return self._run(self._rest.websocket_stats())

    def ready(self) -> bool:
        """Whether the gateway answers `/readyz` with 200."""
        return self._run(self._rest.ready())

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Wait until the gateway is ready; TransportError after `timeout` seconds."""
        self._run(self._rest.wait_ready(timeout))

    def download(
        self,
        task_id: str,
        name: ArtifactName,
        destination: str | os.PathLike[str],
        *,
        on_progress: DownloadProgress | None = None,
    ) -> Path:
        """`on_progress` is called from the client's thread."""
        return self._run(self._rest.download(task_id, name, destination, on_progress=on_progress))

    def artifact_link(self, task_id: str, name: ArtifactName) -> ArtifactLink:
        """A link to the artifact for a browser, holding no token (`RestClient.artifact_link`)."""
        return self._run(self._rest.artifact_link(task_id, name))

    # --- live ----------------------------------------------------------------------------

    def updates(
        self, task_id: str, *, since: int | None = -1, epoch: str | None = None
    ) -> Iterator[Item]:
        """The task's updates as they come (see `ProgressClient.subscribe_task`), until it
        finishes. Stopping the iteration early closes the subscription."""
        items: queue.Queue[Item | _End] = queue.Queue()

        async def start() -> tuple[ProgressClient, asyncio.Task[None]]:
            client = ProgressClient(
                self.base_url, self.token, options=self.options, rest=self._rest
            )
            await client.connect()
            subscription = await client.subscribe_task(task_id, since=since, epoch=epoch)

            async def pump() -> None:
                try:
                    async for item in subscription:
                        items.put(item)
                    items.put(_End())
                except BaseException as exc:
                    items.put(_End(exc))
                finally:
                    await client.close()

            return client, asyncio.create_task(pump())

        client, pump = self._run(start())
        try:
            while True:
                got = items.get()
                if isinstance(got, _End):
                    if got.error is not None:
                        raise got.error
                    return
                yield got
        finally:
            if not pump.done():
                self._run(client.close())

    def wait(self, task_id: str) -> TaskState:
        """Follow the task until it finishes; its final state."""
        final: TaskState | None = None
        for item in self.updates(task_id, since=None):
            final = item.state or final
        if final is None:
            raise RuntimeError(f"task {task_id} ended without a state")
        return final

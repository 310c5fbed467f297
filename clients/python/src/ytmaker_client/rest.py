"""The gateway's REST API (docs/protocol.md) on httpx, with typed answers.

Every method raises `ApiError` (with the API's error `code`) when the gateway refuses, and
`TransportError` when it cannot be reached. The token goes in the Authorization header.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

import httpx
from pydantic import ValidationError

from ytmaker_client.errors import ApiError, TransportError
from ytmaker_client.models import (
    ActiveClients,
    ArtifactLink,
    ControlResult,
    History,
    ProjectSettings,
    ProjectView,
    RunList,
    Started,
    Stats,
    TaskState,
    TaskStatus,
    WebSocketStats,
    task_state,
)

ArtifactName = Literal["video", "thumbnail", "script"]
ARTIFACT_NAMES: tuple[ArtifactName, ...] = ("video", "thumbnail", "script")
#: `on_progress(bytes_done, bytes_total_or_None)` while a download runs.
DownloadProgress = Callable[[int, int | None], None]

_SUFFIX = {
    "video/mp4": ".mp4",
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "application/json": ".json",
}


class RestClient:
    """`async with RestClient("http://127.0.0.1:8080", token) as api: ...`"""

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.AsyncClient(
            base_url=self.base_url, headers=headers, timeout=timeout, transport=transport
        )

    async def __aenter__(self) -> RestClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # --- plumbing ------------------------------------------------------------------------

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise TransportError(f"{self.base_url}: {type(exc).__name__}: {exc}") from None
        if not response.is_success:  # a redirect too: followed, it could take the token along
            raise ApiError.from_response(response)
        return response

    async def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self._request(method, "/api/v1" + path, **kwargs)
        try:
            return response.json()
        except (ValueError, RecursionError):
            raise ApiError(
                "bad_answer", f"not JSON from {path}", status=response.status_code
            ) from None

    @staticmethod
    def _model(cls: Any, data: Any) -> Any:
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise ApiError("bad_answer", f"unexpected answer: {exc.errors()[:2]}") from None

    # --- projects and runs ---------------------------------------------------------------

    async def create_project(
        self,
        title: str,
        content: str,
        settings: ProjectSettings | dict[str, Any] | None = None,
    ) -> Started:
        """Create a project and start its first run."""
        body: dict[str, Any] = {"title": title, "content": content}
        if settings is not None:
            body["settings"] = (
                settings.model_dump(mode="json", exclude_unset=True)
                if isinstance(settings, ProjectSettings)
                else settings
            )
        started: Started = self._model(Started, await self._json("POST", "/projects", json=body))
        return started

    async def start_run(
        self, project_id: str, settings: ProjectSettings | dict[str, Any] | None = None
    ) -> Started:
        """Start another run of a project (with other settings, if given)."""
        body: dict[str, Any] = {}
        if settings is not None:
            body["settings"] = (
                settings.model_dump(mode="json", exclude_unset=True)
                if isinstance(settings, ProjectSettings)
                else settings
            )
        data = await self._json("POST", f"/projects/{_id(project_id)}/tasks", json=body)
        started: Started = self._model(Started, data)
        return started

    async def project(self, project_id: str) -> ProjectView:
        """The project and its tasks, newest first."""
        view: ProjectView = self._model(
            ProjectView, await self._json("GET", f"/projects/{_id(project_id)}")
        )
        return view

    async def runs(
        self,
        *,
        status: TaskStatus | str | None = None,
        project_id: str | None = None,
        limit: int = 100,
        all_users: bool = False,
    ) -> list[TaskState]:
        """The caller's runs, newest first, at most `limit` (1 to 1000); `status` and
        `project_id` filter them; `all_users` (the operator role only) lists every user's."""
        params: dict[str, Any] = {"limit": limit}
        if status is not None:
            params["status"] = str(status)
        if project_id is not None:
            params["project_id"] = project_id
        if all_users:
            params["all"] = "true"
        found: RunList = self._model(RunList, await self._json("GET", "/runs", params=params))
        return found.items

    async def control(
        self, task_id: str, action: Literal["cancel", "pause", "resume"], reason: str = ""
    ) -> ControlResult:
        """Request cancel / pause / resume; `ApiError` `conflict` when the status forbids it."""
        data = await self._json("POST", f"/tasks/{_id(task_id)}/{action}", json={"reason": reason})
        result: ControlResult = self._model(ControlResult, data)
        return result

    async def cancel(self, task_id: str, reason: str = "") -> ControlResult:
        return await self.control(task_id, "cancel", reason)

    async def pause(self, task_id: str, reason: str = "") -> ControlResult:
        return await self.control(task_id, "pause", reason)

    async def resume(self, task_id: str, reason: str = "") -> ControlResult:
        return await self.control(task_id, "resume", reason)

    # --- progress ------------------------------------------------------------------------

    async def task(self, task_id: str) -> TaskState:
        """The task's current state."""
        data = await self._json("GET", f"/progress/{_id(task_id)}")
        try:
            return task_state(data)
        except (ValidationError, AttributeError) as exc:
            raise ApiError("bad_answer", f"not a task state: {exc}") from None

    async def history(
        self,
        task_id: str,
        *,
        since: int | None = None,
        limit: int = 1000,
        source: Literal["memory", "database"] = "database",
    ) -> History:
        """Stored updates after `since` (offset order): `database` holds all of them,
        `memory` the recent ones."""
        path = f"/progress/{_id(task_id)}/history" + ("/db" if source == "database" else "")
        params: dict[str, Any] = {"limit": limit}
        if since is not None:
            params["since"] = since
        history: History = self._model(History, await self._json("GET", path, params=params))
        return history

    async def delete_history(self, task_id: str) -> None:
        """Clear a finished task's stored history (`conflict` while it runs)."""
        await self._request("DELETE", f"/api/v1/progress/{_id(task_id)}/history")

    async def stats(self) -> Stats:
        stats: Stats = self._model(Stats, await self._json("GET", "/progress/stats"))
        return stats

    async def active(self) -> ActiveClients:
        """Operator: connected clients (this instance's and every instance's sessions)."""
        found: ActiveClients = self._model(
            ActiveClients, await self._json("GET", "/progress/active")
        )
        return found

    async def websocket_stats(self) -> WebSocketStats:
        """Operator: this instance's clients, messages and reconnects."""
        stats: WebSocketStats = self._model(
            WebSocketStats, await self._json("GET", "/websocket/stats")
        )
        return stats

    async def ready(self) -> bool:
        """Whether the gateway answers `/readyz` with 200."""
        try:
            return (await self._http.get("/readyz")).status_code == 200
        except httpx.HTTPError:
            return False

    async def wait_ready(self, timeout: float = 60.0, interval: float = 0.5) -> None:
        """Wait until the gateway is ready; TransportError after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while not await self.ready():
            if time.monotonic() > deadline:
                raise TransportError(f"{self.base_url} is not ready after {timeout:g}s")
            await asyncio.sleep(interval)

    # --- artifacts -----------------------------------------------------------------------

    async def artifact_link(self, task_id: str, name: ArtifactName) -> ArtifactLink:
        """A link to the task's `video`, `thumbnail` or `script` to hand to a browser (a
        `<video src>`, a page), which has no token: its `url` opens that artifact alone until
        `expires_at` (an hour by default, never past the token; ask for the next one before
        then), and holds no token, which would open everything for its whole life in every log
        that keeps the URL."""
        if name not in ARTIFACT_NAMES:
            raise ValueError(f"an artifact is one of {', '.join(ARTIFACT_NAMES)}")
        path = f"/artifacts/{_id(task_id)}/{name}/link"
        link: ArtifactLink = self._model(ArtifactLink, await self._json("GET", path))
        if not link.url.startswith("/api/v1/artifacts/"):
            raise ApiError("bad_answer", f"not a link to an artifact from {path}")
        return link.model_copy(update={"url": self.base_url + link.url})

    async def download(
        self,
        task_id: str,
        name: ArtifactName,
        destination: str | os.PathLike[str],
        *,
        on_progress: DownloadProgress | None = None,
        chunk_size: int = 256 * 1024,
    ) -> Path:
        """Download the task's `video`, `thumbnail` or `script` to `destination` (a file, or
        an existing directory: then `<task_id>-<name><suffix>` in it). Written to a temporary
        name first, so a broken download leaves no partial file. Returns the file's path."""
        if name not in ARTIFACT_NAMES:
            raise ValueError(f"an artifact is one of {', '.join(ARTIFACT_NAMES)}")
        url = f"/api/v1/artifacts/{_id(task_id)}/{name}"
        try:
            async with self._http.stream("GET", url) as response:
                if not response.is_success:
                    await response.aread()
                    raise ApiError.from_response(response)
                target = _target(Path(destination), task_id, name, response)
                total = _length(response)
                done = 0
                partial = target.with_name(target.name + ".part")
                try:
                    # Local writes of one chunk each: short next to the network's waits.
                    with open(partial, "wb") as out:  # noqa: ASYNC230
                        async for chunk in response.aiter_bytes(chunk_size):
                            out.write(chunk)
                            done += len(chunk)
                            if on_progress is not None:
                                on_progress(done, total)
                    partial.replace(target)
                finally:
                    partial.unlink(missing_ok=True)
        except httpx.HTTPError as exc:
            raise TransportError(f"{self.base_url}: {type(exc).__name__}: {exc}") from None
        return target


def _id(value: str) -> str:
    """An id as one path segment: with `/`, `?` or `#` (or a `..`) left as they are, an id
    taken from elsewhere (a page's query, a file) would address another route:
    `../runs?all=true#` was `GET /api/v1/runs?all=true`."""
    segment = quote(value, safe="")
    return segment.replace(".", "%2E") if segment.strip(".") == "" else segment


def _target(destination: Path, task_id: str, name: str, response: httpx.Response) -> Path:
    if not destination.is_dir():
        return destination
    content_type = response.headers.get("content-type", "").split(";")[0].strip()
    return destination / f"{task_id}-{name}{_SUFFIX.get(content_type, '')}"


def _length(response: httpx.Response) -> int | None:
    try:
        return int(response.headers["content-length"])
    except (KeyError, ValueError):
        return None

"""The progress service's internal HTTP API (services/progress/API.md), the gateway's read model.

Answers are plain JSON dicts in the shapes API.md names. `None` means 404; anything the
service cannot answer (down, 5xx, timeout) raises `ProgressUnavailable`, which REST turns into
503 and the WebSocket into an `error` message.

At most `in_flight` requests are out at once; the others wait their turn, for `queue_timeout_s`
at most. httpx's pool would take them all, and it spends time quadratic in the requests waiting
for a connection: a thousand clients subscribing at once (a gateway restarted, the fan-out
benchmark) took the gateway's whole core, and most subscribes timed out (decision 0084).

Task lookups (every subscribe makes one) are asked together: those of one event-loop turn go
out as one `POST /tasks/lookup` per `LOOKUP_BATCH` tasks, a task asked for twice once
(decision 0086).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx

from ytmaker_shared.events.envelope import TASK_ID_MAX_LENGTH

#: Tasks per lookup request (the progress API takes up to 1,000).
LOOKUP_BATCH = 100


class ProgressUnavailable(RuntimeError):
    """The progress service did not answer usefully."""


class Conflict(RuntimeError):
    """The progress service refused with 409; `str(exc)` is its message."""


class ProgressApi:
    def __init__(
        self,
        base_url: str,
        timeout_s: float = 5.0,
        transport: httpx.AsyncBaseTransport | None = None,
        *,
        token: str | None = None,
        in_flight: int = 32,
        queue_timeout_s: float = 30.0,
    ) -> None:
        """`token` is the service credential the progress service requires on every call;
        `timeout_s` bounds each exchange, `queue_timeout_s` the wait for a turn before it.
        The read side is inside the deployment: its calls never go through a proxy the
        environment names for the external services (`trust_env=False`), nor does the token."""
        self._root = base_url.rstrip("/")
        self._http = httpx.AsyncClient(
            base_url=self._root + "/internal/v1",
            timeout=timeout_s,
            transport=transport,
            headers={"authorization": f"Bearer {token}"} if token else None,
            limits=httpx.Limits(max_connections=in_flight, max_keepalive_connections=in_flight),
            trust_env=False,
        )
        self._turns = asyncio.Semaphore(in_flight)
        self._queue_timeout_s = queue_timeout_s
        self._lookups: dict[str, asyncio.Future[dict[str, Any] | None]] = {}
        self._looking_up: set[asyncio.Task[None]] = set()

    async def close(self) -> None:
        await self._http.aclose()

    @contextlib.asynccontextmanager
    async def _turn(self) -> AsyncIterator[None]:
        try:
            async with asyncio.timeout(self._queue_timeout_s):
                await self._turns.acquire()
        except TimeoutError:
            raise ProgressUnavailable("progress service: too many requests waiting") from None
        try:
            yield
        finally:
            self._turns.release()

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            async with self._turn():
                response = await self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ProgressUnavailable(f"progress service: {type(exc).__name__}") from None
        _release(response)
        if response.status_code >= 500:
            raise ProgressUnavailable(f"progress service answered {response.status_code}")
        return response

    async def _get(self, path: str, **params: Any) -> Any:
        clean = {k: v for k, v in params.items() if v is not None}
        response = await self._request("GET", path, params=clean)
        if response.status_code == 404:
            return None
        if response.status_code >= 400:
            raise ProgressUnavailable(f"progress service refused {path}: {response.status_code}")
        return response.json()

    async def caught_up(self) -> bool:
        """Whether the read model has folded everything up to now (its `/readyz`)."""
        try:
            async with self._turn():
                response = await self._http.get(self._root + "/readyz")
        except (httpx.HTTPError, ProgressUnavailable):
            return False
        _release(response)
        return response.status_code == 200

    async def task(self, task_id: str) -> dict[str, Any] | None:
        """The task's state (a copy of its own for each caller), None if unknown."""
        if not 0 < len(task_id) <= TASK_ID_MAX_LENGTH:  # no task has such an id: no need to ask
            return None
        found = self._lookups.get(task_id)
        if found is None:
            loop = asyncio.get_running_loop()
            found = self._lookups[task_id] = loop.create_future()
            found.add_done_callback(_retrieved)
            if len(self._lookups) == 1:  # the turn's first: ask once the turn is over
                loop.call_soon(self._look_up_all)
        state = await asyncio.shield(found)  # one caller cancelled is not the others
        return None if state is None else dict(state)

    def _look_up_all(self) -> None:
        waiting = list(self._lookups.items())
        self._lookups = {}
        for start in range(0, len(waiting), LOOKUP_BATCH):
            request = asyncio.create_task(
                self._look_up(dict(waiting[start : start + LOOKUP_BATCH]))
            )
            self._looking_up.add(request)
            request.add_done_callback(self._looking_up.discard)

    async def _look_up(self, waiting: dict[str, asyncio.Future[dict[str, Any] | None]]) -> None:
        try:
            found = await self._post_lookup(list(waiting))
        except ProgressUnavailable as exc:
            for future in waiting.values():
                if not future.done():
                    future.set_exception(ProgressUnavailable(str(exc)))
            return
        for task_id, future in waiting.items():
            if not future.done():
                future.set_result(found.get(task_id))

    async def _post_lookup(self, task_ids: list[str]) -> dict[str, dict[str, Any]]:
        response = await self._request("POST", "/tasks/lookup", json={"task_ids": task_ids})
        if response.status_code >= 400:
            raise ProgressUnavailable(f"progress service refused a lookup: {response.status_code}")
        try:
            items = response.json()["items"]
            asked = set(task_ids)
            return {state["task_id"]: state for state in items if state["task_id"] in asked}
        except (ValueError, KeyError, TypeError):
            raise ProgressUnavailable("progress service: a lookup answer without items") from None

    async def tasks(
        self,
        *,
        owner: str | None = None,
        project_id: str | None = None,
        status: str | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        result = await self._get(
            "/tasks", owner=owner, project_id=project_id, status=status, limit=limit
        )
        items: list[dict[str, Any]] = (result or {}).get("items", [])
        return items

    async def project(self, project_id: str) -> dict[str, Any] | None:
        result: dict[str, Any] | None = await self._get(f"/projects/{project_id}")
        return result

    async def history(
        self, task_id: str, *, source: str, limit: int | None, since: int | None
    ) -> dict[str, Any] | None:
        result: dict[str, Any] | None = await self._get(
            f"/tasks/{task_id}/history", source=source, limit=limit, since=since
        )
        return result

    async def delete_history(self, task_id: str) -> bool:
        """True when deleted, False for an unknown task; raises Conflict while it runs."""
        response = await self._request("DELETE", f"/tasks/{task_id}/history")
        if response.status_code == 404:
            return False
        if response.status_code == 409:
            raise Conflict(_message(response) or "the task is not finished")
        if response.status_code >= 400:
            raise ProgressUnavailable(f"progress service answered {response.status_code}")
        return True

    async def stats(self, owner: str | None = None) -> dict[str, Any]:
        result: dict[str, Any] = await self._get("/stats", owner=owner) or {}
        return result

    async def save_session(self, record: dict[str, Any]) -> None:
        response = await self._request("POST", "/sessions", json=record)
        if response.status_code >= 400:
            raise ProgressUnavailable(f"session not stored: {response.status_code}")

    async def save_sessions(self, records: list[dict[str, Any]]) -> None:
        """Upsert several session records in one request, in order (at most 1000)."""
        response = await self._request("POST", "/sessions/batch", json={"items": records})
        if response.status_code >= 400:
            raise ProgressUnavailable(f"sessions not stored: {response.status_code}")

    async def sessions(
        self, *, active: bool | None = None, user: str | None = None
    ) -> list[dict[str, Any]]:
        result = await self._get(
            "/sessions", active=None if active is None else str(active).lower(), user=user
        )
        items: list[dict[str, Any]] = (result or {}).get("items", [])
        return items


def _retrieved(future: asyncio.Future[Any]) -> None:
    """Mark a lookup's failure as seen: its callers may all have gone."""
    if not future.cancelled():
        future.exception()


def _message(response: httpx.Response) -> str | None:
    try:
        body = response.json()
        message = body["error"]["message"]
        return str(message)
    except (ValueError, KeyError, TypeError):
        return None


def _release(response: httpx.Response) -> None:
    """Let a read response be freed by its reference count. httpx 0.28 wraps its body in a
    stream that refers back to the response, a cycle only the garbage collector's full pass
    reclaims (encode/httpx#3733); the body is read and closed, so its stream is no longer
    needed (decision 0106)."""
    response.stream = httpx.ByteStream(b"")

"""The internal HTTP API the gateway calls (services/progress/API.md is its contract).

Blocking database calls run in FastAPI's thread pool (plain `def` endpoints); the endpoints
that read the in-memory history are `async` because the history lives in the event loop.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Header, HTTPException, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

from ytmaker_progress import eta
from ytmaker_progress.readmodel.memory import RecentHistory
from ytmaker_progress.readmodel.store import NotFinished, Store, as_utc
from ytmaker_shared.events.envelope import TASK_ID_MAX_LENGTH
from ytmaker_shared.progress import ACTIVE_STATUSES

#: The largest offset Kafka (and a BIGINT column) can hold: a larger `since` is refused (422).
MAX_OFFSET = 2**63 - 1

#: A text the read model can hold: none holds a NUL (`rows.checked_update` refuses it), and
#: PostgreSQL's driver refuses to send one, even to compare (a 500).
NO_NUL = r"^[^\x00]*$"
NoNulText = Annotated[str, Field(pattern=NO_NUL)]
PathId = Annotated[str, Path(pattern=NO_NUL)]
QueryText = Annotated[str | None, Query(pattern=NO_NUL)]


def _in_utc(at: datetime) -> datetime:
    try:
        return at.astimezone(UTC)
    except OverflowError:
        raise ValueError("not a time between the years 1 and 9999 in UTC") from None


#: An RFC 3339 time, stored in UTC: SQLite's column keeps the clock time alone, and
#: PostgreSQL's driver cannot read back a time outside Python's years in UTC.
UtcTime = Annotated[AwareDatetime, AfterValidator(_in_utc)]


class SessionIn(BaseModel):
    """A WebSocket session as the gateway reports it."""

    model_config = ConfigDict(extra="forbid")
    client_id: NoNulText = Field(min_length=1, max_length=100)
    user: NoNulText = Field(min_length=1, max_length=128)
    connected_at: UtcTime
    disconnected_at: UtcTime | None = None
    last_active_at: UtcTime | None = None
    message_count: int = Field(default=0, ge=0)
    address: NoNulText = Field(default="", max_length=64)
    user_agent: NoNulText = Field(default="", max_length=500)
    subscriptions: list[str] = Field(default_factory=list, max_length=10_000)
    #: task_id → the last offset the gateway delivered to this client (-1: none yet), so that
    #: any gateway replica can restore the session (gateway decision 0032). Optional.
    offsets: dict[str, Annotated[int, Field(ge=-1, le=MAX_OFFSET)]] = Field(
        default_factory=dict, max_length=10_000
    )


class SessionBatchIn(BaseModel):
    """Several session records at once (a gateway's checkpoint), upserted in order."""

    model_config = ConfigDict(extra="forbid")
    items: list[SessionIn] = Field(max_length=1000)


class LookupIn(BaseModel):
    """Tasks asked for at once (the gateway's subscribes of one moment, decision 0086)."""

    model_config = ConfigDict(extra="forbid")
    task_ids: list[Annotated[NoNulText, Field(min_length=1, max_length=TASK_ID_MAX_LENGTH)]] = (
        Field(min_length=1, max_length=1000)
    )


class ApiError(HTTPException):
    def __init__(self, status: int, code: str, message: str, **details: Any) -> None:
        super().__init__(status, message)
        self.code = code
        self.details = details


def create_app(
    store: Store,
    memory: RecentHistory,
    *,
    token: str,
    epoch: Callable[[], str | None],
    ready: Callable[[], bool],
    eta_window_s: float = 3600.0,
) -> FastAPI:
    """The API over `store` and `memory`. Every endpoint requires `Authorization: Bearer
    <token>` (the service credential); `epoch()` is the current topic id of
    `progress.updates`; `ready()` answers /readyz."""
    if not token:
        raise ValueError("the internal API needs a service credential (YTMAKER_INTERNAL_TOKEN)")
    expected = f"Bearer {token}".encode()

    def credential(authorization: str | None = Header(default=None)) -> None:
        given = (authorization or "").encode()
        if not secrets.compare_digest(given, expected):
            raise ApiError(401, "unauthorized", "this API needs the service credential")

    app = FastAPI(
        title="ytmaker progress (internal)",
        version="1",
        dependencies=[Depends(credential)],
        # No unauthenticated documentation routes: API.md is the contract.
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    averages = _Averages(store, eta_window_s)

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        body = {"error": {"code": exc.code, "message": exc.detail, "details": exc.details}}
        return JSONResponse(body, status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors()[:10]
        ]  # no input echo: it may be large
        body = {
            "error": {"code": "invalid_request", "message": "invalid request", "details": errors}
        }
        return JSONResponse(body, status_code=422)

    def with_eta(state: dict[str, Any]) -> dict[str, Any]:
        """The projector's estimate (on the stream, 0024) when the state has one; else the
        read model's (0023). A finished task has none."""
        if state.get("eta_seconds") is None or state.get("status") not in ACTIVE_STATUSES:
            state["eta_seconds"] = eta.estimate(state, averages.get())
        return state

    def known(task_id: str) -> dict[str, Any]:
        state = store.task(task_id)
        if state is None:
            raise ApiError(404, "not_found", f"no task {task_id}", task_id=task_id)
        return state

    @app.get("/internal/v1/tasks/{task_id}")
    def get_task(task_id: PathId) -> dict[str, Any]:
        return with_eta(known(task_id))

    @app.post("/internal/v1/tasks/lookup")
    def lookup_tasks(lookup: LookupIn) -> dict[str, Any]:
        return {"items": [with_eta(s) for s in store.tasks_by_id(lookup.task_ids)]}

    @app.get("/internal/v1/tasks")
    def list_tasks(
        owner: QueryText = None,
        project_id: QueryText = None,
        status: QueryText = None,
        limit: int = Query(default=100, ge=1, le=1000),
    ) -> dict[str, Any]:
        items = store.tasks(owner=owner, project_id=project_id, status=status, limit=limit)
        return {"items": [with_eta(s) for s in items]}

    @app.get("/internal/v1/projects/{project_id}")
    def get_project(project_id: PathId) -> dict[str, Any]:
        project = store.project(project_id)
        if project is None:
            raise ApiError(404, "not_found", f"no project {project_id}", project_id=project_id)
        project["created_at"] = _utc(project["created_at"])
        tasks = store.tasks(project_id=project_id, limit=1000)
        return {"project": project, "tasks": [with_eta(s) for s in tasks]}

    @app.get("/internal/v1/tasks/{task_id}/history")
    async def history(
        task_id: PathId,
        source: Literal["memory", "database"] = "memory",
        limit: int = Query(default=100, ge=1, le=10_000),
        since: int = Query(default=-1, ge=-1, le=MAX_OFFSET),
    ) -> dict[str, Any]:
        await asyncio.to_thread(known, task_id)
        if source == "database":
            items = await asyncio.to_thread(store.history, task_id, since=since, limit=limit)
        else:
            if not memory.complete(task_id):
                stored = await asyncio.to_thread(store.history_text, task_id)
                memory.merge(task_id, stored[-memory.per_task :])
            items = memory.items(task_id, since=since, limit=limit)
        return {"task_id": task_id, "source": source, "items": items}

    @app.get("/internal/v1/tasks/{task_id}/updates")
    def updates(
        task_id: PathId,
        after: int | None = Query(default=None, ge=-1, le=MAX_OFFSET),
        epoch_: str | None = Query(default=None, alias="epoch", max_length=64),
    ) -> dict[str, Any]:
        row = store.task_row(task_id)
        if row is None:
            raise ApiError(404, "not_found", f"no task {task_id}", task_id=task_id)
        current = epoch()
        same_epoch = epoch_ is None or epoch_ == current
        held = (
            after is not None
            and same_epoch
            and after >= row.history_floor
            and after <= row.last_offset
        )
        items = store.history(task_id, since=after) if after is not None and same_epoch else []
        return {
            "task_id": task_id,
            "epoch": current,
            "recovered": held,
            "snapshot": None if held else with_eta(known(task_id)),
            "items": [{"offset": i["offset"], "update": i["update"]} for i in items],
        }

    @app.delete("/internal/v1/tasks/{task_id}/history", status_code=204)
    async def delete_history(task_id: PathId) -> Response:
        try:
            found = await asyncio.to_thread(store.delete_history, task_id)
        except NotFinished:
            raise ApiError(
                409, "conflict", f"task {task_id} has not finished", task_id=task_id
            ) from None
        if not found:
            raise ApiError(404, "not_found", f"no task {task_id}", task_id=task_id)
        memory.drop(task_id)
        return Response(status_code=204)

    @app.get("/internal/v1/stats")
    def stats(owner: QueryText = None) -> dict[str, Any]:
        return store.stats(owner)

    @app.post("/internal/v1/sessions")
    def upsert_session(session: SessionIn) -> dict[str, Any]:
        return _session_out(store.upsert_session(_session_in(session, datetime.now(UTC))))

    @app.post("/internal/v1/sessions/batch")
    def upsert_sessions(batch: SessionBatchIn) -> dict[str, int]:
        now = datetime.now(UTC)
        store.upsert_sessions([_session_in(session, now) for session in batch.items])
        return {"stored": len(batch.items)}

    @app.get("/internal/v1/sessions")
    def sessions(active: bool | None = None, user: QueryText = None) -> dict[str, Any]:
        return {"items": [_session_out(s) for s in store.sessions(active=active, user=user)]}

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "service": "progress"}

    @app.get("/readyz")
    async def readyz(response: Response) -> dict[str, str]:
        if ready():
            return {"status": "ready", "service": "progress"}
        response.status_code = 503
        return {"status": "starting", "service": "progress"}

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app


class _Averages:
    """Recent stage durations for the ETA, recomputed at most every 10 seconds."""

    def __init__(self, store: Store, window_s: float) -> None:
        self.store = store
        self.window_s = window_s
        self._value: dict[str, float] = {}
        self._at = float("-inf")

    def get(self) -> dict[str, float]:
        if time.monotonic() - self._at > 10:
            since = datetime.now(UTC) - timedelta(seconds=self.window_s)
            self._value = self.store.recent_stage_durations(since)
            self._at = time.monotonic()
        return self._value


def _utc(value: datetime | None) -> datetime | None:
    return None if value is None else as_utc(value)


def _session_in(session: SessionIn, now: datetime) -> dict[str, Any]:
    """The stored form of a session record. Its subscriptions are a task id alone, or
    `[task_id, offset]` where the gateway reported the last offset delivered (no schema change
    needed)."""
    values = session.model_dump(exclude={"offsets"}) | {"updated_at": now}
    offsets = session.offsets
    values["subscriptions"] = [
        [t, offsets[t]] if t in offsets else t for t in session.subscriptions
    ]
    return values


def _session_out(session: dict[str, Any]) -> dict[str, Any]:
    for key in ("connected_at", "disconnected_at", "last_active_at", "updated_at"):
        session[key] = _utc(session.get(key))
    stored = session.get("subscriptions") or []
    session["subscriptions"] = [s[0] if isinstance(s, list) else s for s in stored]
    session["offsets"] = {s[0]: s[1] for s in stored if isinstance(s, list)}
    return session

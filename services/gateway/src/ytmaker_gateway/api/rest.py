"""The public REST API under /api/v1 (docs/protocol.md "REST"). Every endpoint needs a bearer token;
errors are `{"error": {"code", "message", "details"}}` (see `rules/errors.py`)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from ytmaker_gateway import metrics
from ytmaker_gateway.adapters.progress_api import Conflict as UpstreamConflict
from ytmaker_gateway.adapters.progress_api import ProgressUnavailable
from ytmaker_gateway.api.download import send_file, stream_artifact
from ytmaker_gateway.api.models import (
    ERRORS,
    ArtifactLink,
    ClientSubscription,
    ControlAccepted,
    ControlRequest,
    ErrorBody,
    History,
    ProjectCreate,
    RunCreate,
    Started,
    Stats,
)
from ytmaker_gateway.auth import (
    AuthError,
    GrantMismatch,
    Principal,
    authenticate,
    bearer,
    mint_grant,
    redeem_grant,
)
from ytmaker_gateway.core.sessions import LiveConnection
from ytmaker_gateway.gateway import Gateway
from ytmaker_gateway.rules.artifact_names import PUBLIC_NAMES, candidates
from ytmaker_gateway.rules.errors import (
    Conflict,
    Forbidden,
    GatewayError,
    NotFound,
    Unauthorized,
    Unavailable,
)
from ytmaker_gateway.rules.ids import CLIENT_ID_PATTERN, MAX_OFFSET, UUID_PATTERN
from ytmaker_shared.artifacts import ArtifactNotFound, ArtifactStoreUnavailable, InvalidKey
from ytmaker_shared.events import ControlAction, ProjectSettings
from ytmaker_shared.progress import TaskStatus

router = APIRouter(prefix="/api/v1", responses=ERRORS)


def gateway(request: Request) -> Gateway:
    gw: Gateway = request.app.state.gateway
    return gw


def principal(request: Request) -> Principal:
    """The caller, from `Authorization: Bearer`; raises Unauthorized (401)."""
    try:
        return authenticate(gateway(request).tokens, bearer(request.headers.get("authorization")))
    except AuthError as exc:
        raise _unauthorized(exc) from None


def downloader(
    request: Request,
    grant: Annotated[
        str | None,
        Query(
            max_length=2048,
            description="Instead of the Authorization header: the grant of the artifact's "
            "link (`GET .../{name}/link`), for this artifact only.",
        ),
    ] = None,
    token: Annotated[
        str | None,
        Query(
            deprecated=True,
            description="The bearer token in the URL, for clients of old: proxies and "
            "browsers keep URLs in logs and histories. Use `grant`.",
        ),
    ] = None,
) -> Principal:
    """The caller of a download. A `<video src>` or `<img src>` cannot send the Authorization
    header: it loads the artifact's link, whose grant opens this artifact alone, for a while
    (docs/decisions/0134). The header comes first, then `grant`, then the deprecated `token`."""
    config = gateway(request).tokens
    header = bearer(request.headers.get("authorization"))
    try:
        if header is None and not grant and token:
            metrics.TOKENS_IN_URL.labels("artifact").inc()
        if header is not None or not grant:
            return authenticate(config, header or token)
        path = request.path_params
        return redeem_grant(config, grant, path["task_id"], path["name"])
    except GrantMismatch as exc:
        raise Forbidden(str(exc)) from None
    except AuthError as exc:
        raise _unauthorized(exc) from None


def _unauthorized(exc: AuthError) -> Unauthorized:
    metrics.BAD_INPUT.labels("unauthorized").inc()
    return Unauthorized(str(exc))


def operator(who: Annotated[Principal, Depends(principal)]) -> Principal:
    if not who.is_operator:
        raise Forbidden("this view needs the operator role")
    return who


Gw = Annotated[Gateway, Depends(gateway)]
Who = Annotated[Principal, Depends(principal)]
Downloader = Annotated[Principal, Depends(downloader)]
Operator = Annotated[Principal, Depends(operator)]

# Ids are checked as the system issues them before any lookup or URL is built (422 otherwise).
_EXAMPLE_ID = "0190f1c2-7a3b-7c00-8000-000000000002"
TaskId = Annotated[
    str, Path(pattern=UUID_PATTERN, max_length=36, description="A task id.", examples=[_EXAMPLE_ID])
]
ProjectId = Annotated[
    str,
    Path(pattern=UUID_PATTERN, max_length=36, description="A project id.", examples=[_EXAMPLE_ID]),
]
ClientId = Annotated[
    str, Query(pattern=CLIENT_ID_PATTERN, max_length=34, description="A WebSocket client id.")
]
Since = Annotated[
    int | None, Query(ge=-1, le=MAX_OFFSET, description="Only offsets above it (-1: all).")
]


def _urls(request: Request, gw: Gateway, project_id: str) -> tuple[str, str]:
    base = gw.settings.public_url.rstrip("/") or str(request.base_url).rstrip("/")
    ws = "ws" + base[len("http") :] if base.startswith("http") else base
    return f"{ws}/api/v1/ws", f"{base}/projects/{project_id}"


async def _upstream(call: Any) -> Any:
    try:
        return await call
    except ProgressUnavailable as exc:
        raise Unavailable(str(exc)) from None


# --- projects and runs --------------------------------------------------------------------


@router.post("/projects", status_code=201, response_model=Started, tags=["projects"])
async def create_project(body: ProjectCreate, request: Request, gw: Gw, who: Who) -> Started:
    """Create a project and start its first run (emits `task.requested`)."""
    started = await gw.commands.start_run(
        who, title=body.title, content=body.content, settings=body.settings.contract()
    )
    ws_url, page_url = _urls(request, gw, started.project_id)
    return Started(
        project_id=started.project_id, task_id=started.task_id, ws_url=ws_url, page_url=page_url
    )


@router.post(
    "/projects/{project_id}/tasks", status_code=201, response_model=Started, tags=["projects"]
)
async def start_run(
    project_id: ProjectId, request: Request, gw: Gw, who: Who, body: RunCreate | None = None
) -> Started:
    """Start another run of a project."""
    found = await gw.access.project(who, project_id)
    project = found["project"]
    settings = (
        body.settings.contract() if body and body.settings else None
    ) or ProjectSettings.model_validate(project.get("settings") or {})
    started = await gw.commands.start_run(
        who,
        title=project["title"],
        content=project["content"],
        settings=settings,
        project_id=project_id,
    )
    ws_url, page_url = _urls(request, gw, project_id)
    return Started(project_id=project_id, task_id=started.task_id, ws_url=ws_url, page_url=page_url)


@router.get("/projects/{project_id}", tags=["projects"])
async def get_project(project_id: ProjectId, gw: Gw, who: Who) -> dict[str, Any]:
    """The project with its tasks, newest first."""
    return await gw.access.project(who, project_id)


@router.post(
    "/tasks/{task_id}/{action}", response_model=ControlAccepted, status_code=202, tags=["tasks"]
)
async def control(
    task_id: TaskId,
    action: ControlAction,
    gw: Gw,
    who: Who,
    body: ControlRequest | None = None,
) -> dict[str, Any]:
    """Cancel, pause or resume a run; 409 when its state forbids it."""
    return await gw.commands.control(who, task_id, action, body.reason if body else "")


# --- progress -----------------------------------------------------------------------------


@router.get("/progress/stats", response_model=Stats, tags=["progress"])
async def stats(gw: Gw, who: Who) -> dict[str, Any]:
    """Task counts: an operator's cover every task, a user's their own."""
    owner = None if who.is_operator else who.user
    result: dict[str, Any] = await _upstream(gw.progress.stats(owner))
    return result


@router.get("/progress/active", tags=["operator"])
async def active(gw: Gw, who: Operator) -> dict[str, Any]:
    """Connected clients: this instance's, and every instance's from the read model."""
    everywhere = await _upstream(gw.progress.sessions(active=True))
    by_user: dict[str, int] = {}
    for session in everywhere:
        by_user[session.get("user", "")] = by_user.get(session.get("user", ""), 0) + 1
    return {
        "instance": gw.settings.instance,
        "local": _local_clients(gw),
        "total_clients": len(everywhere),
        "by_user": by_user,
        "sessions": everywhere,
    }


def _local_clients(gw: Gateway) -> dict[str, Any]:
    by_project: dict[str, int] = {}
    for session in list(gw.sessions.active.values()):
        projects = session.connection.projects() if session.connection is not None else []
        for project_id in projects:
            by_project[project_id] = by_project.get(project_id, 0) + 1
    return {
        "total_clients": len(gw.sessions.active),
        "by_user": gw.sessions.by_user(),
        "by_project": by_project,
    }


@router.get("/progress/{task_id}", tags=["progress"])
async def progress(task_id: TaskId, gw: Gw, who: Who) -> dict[str, Any]:
    """The task's current state (docs/protocol.md "A task's state")."""
    _, state = await gw.access.task(who, task_id)
    if state is None:  # created here a moment ago, not folded yet
        ref = gw.access.recent.get(task_id)
        assert ref is not None
        return {
            "task_id": task_id,
            "project_id": ref.project_id,
            "owner": ref.owner,
            "title": ref.title,
            "status": TaskStatus.QUEUED.value,
            "progress": 0.0,
            "stages": {},
            "offset": None,
            "epoch": gw.hub.epoch,
        }
    return state


async def _history(
    gw: Gateway, who: Principal, task_id: str, source: str, limit: int, since: int | None
) -> dict[str, Any]:
    await gw.access.task(who, task_id)
    found = await _upstream(gw.progress.history(task_id, source=source, limit=limit, since=since))
    if found is None:
        return {"task_id": task_id, "source": source, "items": []}
    result: dict[str, Any] = found
    return result


@router.get("/progress/{task_id}/history", response_model=History, tags=["progress"])
async def history(
    task_id: TaskId,
    gw: Gw,
    who: Who,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
    since: Since = None,
) -> dict[str, Any]:
    """Recent updates from memory (`source: memory`), offsets above `since`."""
    return await _history(gw, who, task_id, "memory", limit, since)


@router.get("/progress/{task_id}/history/db", response_model=History, tags=["progress"])
async def history_db(
    task_id: TaskId,
    gw: Gw,
    who: Who,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    since: Since = None,
) -> dict[str, Any]:
    """The full stored history from the read model (`source: database`)."""
    return await _history(gw, who, task_id, "database", limit, since)


@router.delete("/progress/{task_id}/history", status_code=204, tags=["progress"])
async def delete_history(task_id: TaskId, gw: Gw, who: Who) -> Response:
    """Clear the stored history of a finished task (the log keeps it for audit)."""
    _, state = await gw.access.task(who, task_id)
    if state is None:  # created here a moment ago: the read model holds nothing of it yet
        status = gw.access.status(task_id, state)
        raise Conflict("the task has no stored history yet: it has just started", status=status)
    try:
        deleted = await _upstream(gw.progress.delete_history(task_id))
    except UpstreamConflict as exc:
        raise Conflict(str(exc)) from None
    if not deleted:
        raise Forbidden()
    return Response(status_code=204)


@router.post("/progress/{task_id}/subscribe", response_model=ClientSubscription, tags=["progress"])
async def subscribe_client(
    task_id: TaskId,
    client_id: ClientId,
    gw: Gw,
    who: Who,
    since: Since = None,
) -> dict[str, Any]:
    """Subscribe a live WebSocket client of this instance to a task."""
    connection = _connection(gw, who, client_id)
    await connection.subscribe_from_rest(task_id, since)
    return {"client_id": client_id, "task_id": task_id, "subscribed": True}


@router.post(
    "/progress/{task_id}/unsubscribe", response_model=ClientSubscription, tags=["progress"]
)
async def unsubscribe_client(
    task_id: TaskId, client_id: ClientId, gw: Gw, who: Who
) -> dict[str, Any]:
    """Unsubscribe a live WebSocket client of this instance from a task."""
    connection = _connection(gw, who, client_id)
    connection.unsubscribe(task_id)
    return {"client_id": client_id, "task_id": task_id, "subscribed": False}


def _connection(gw: Gateway, who: Principal, client_id: str) -> LiveConnection:
    """The task stream (`/api/v1/ws`) `client_id` names on this instance, the caller's (an
    operator: anybody's); a project stream is none (it takes no task subscription)."""
    session = gw.sessions.active.get(client_id)
    connection = session.connection if session is not None else None
    if (
        session is None
        or connection is None
        or not connection.takes_tasks
        or not who.may_see(session.user)
    ):
        raise NotFound("no such client connected to this gateway instance")
    return connection


@router.get("/websocket/stats", tags=["operator"])
async def websocket_stats(gw: Gw, who: Operator) -> dict[str, Any]:
    """This instance's clients, messages and reconnects."""
    local = _local_clients(gw)
    return {
        **local,
        "instance": gw.settings.instance,
        "messages_sent": int(metrics.MESSAGES_SENT._value.get()),
        "reconnects": gw.reconnects,
        "reconnects_restored": gw.reconnects_restored,
        "fanout": gw.hub.stats(),
    }


# --- artifacts ----------------------------------------------------------------------------


ArtifactName = Annotated[str, Path(max_length=40, description="`video`, `thumbnail` or `script`.")]

_ARTIFACT_TYPES: dict[str, Any] = {
    "video/mp4": {},
    "image/jpeg": {},
    "image/png": {},
    "application/json": {},
}


@router.get(
    "/artifacts/{task_id}/{name}",
    tags=["artifacts"],
    responses={
        200: {"content": _ARTIFACT_TYPES},
        206: {"description": "the single range asked for", "content": _ARTIFACT_TYPES},
        416: {"model": ErrorBody, "description": "a `Range` that starts past the end"},
    },
)
async def artifact(
    task_id: TaskId, name: ArtifactName, gw: Gw, who: Downloader, request: Request
) -> Response:
    """The task's `video` (with HTTP range requests), `thumbnail` or `script`, to its owner:
    a local file as is, an object of a remote store (s3://) streamed from it."""
    _check_name(name)
    _, state = await gw.access.task(who, task_id)
    for found in candidates(task_id, state or {}, name):
        try:
            key = found.key or gw.artifacts.key(found.uri or "")
            path = gw.artifacts.local_path(key)
            wanted = request.headers.get("range")
            if path is None:
                return await stream_artifact(gw.artifacts, key, found.content_type, wanted)
            return await send_file(path, found.content_type, wanted)
        except (InvalidKey, ArtifactNotFound):
            continue
        except ArtifactStoreUnavailable as exc:
            raise Unavailable("the artifact store cannot be reached; try again") from exc
    raise NotFound(f"the task has no {name} (yet)")


@router.get("/artifacts/{task_id}/{name}/link", response_model=ArtifactLink, tags=["artifacts"])
async def artifact_link(task_id: TaskId, name: ArtifactName, gw: Gw, who: Who) -> ArtifactLink:
    """A URL that opens the artifact without the Authorization header until `expires_at`
    (`YTMAKER_ARTIFACT_LINK_TTL_S`, never past the caller's token): for a `<video src>` or
    an `<img src>`, where the token must not go (docs/decisions/0134). Refused as the download
    itself would be; whether the artifact is made yet, the download says."""
    _check_name(name)
    await gw.access.task(who, task_id)
    url = f"/api/v1/artifacts/{task_id}/{name}"
    ttl_s = gw.settings.artifact_link_ttl_s
    if not gw.tokens.secret:  # anonymous development (else no request gets here): none needed
        return ArtifactLink(url=url, expires_at=datetime.fromtimestamp(time.time() + ttl_s, UTC))
    grant, expires = mint_grant(gw.tokens, who, task_id, name, ttl_s)
    return ArtifactLink(url=f"{url}?grant={grant}", expires_at=datetime.fromtimestamp(expires, UTC))


def _check_name(name: str) -> None:
    if name not in PUBLIC_NAMES:
        raise NotFound(f"no artifact {name[:40]!r}: use one of {sorted(PUBLIC_NAMES)}")


__all__ = ["GatewayError", "router"]

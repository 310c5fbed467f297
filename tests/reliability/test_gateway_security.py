"""The gateway's closed doors (docs/decisions/0042): every route the app serves (read
from the app, so that a new route cannot escape) and both WebSockets, against six callers who
must not get in: no token, an expired one, a forged signature, a wrong audience, `alg: none`,
and another user's valid token. The first five are refused (401, or close 4401 before a single
message); the other user is refused alice's task and project (403/404, `forbidden`, close 4403)
and learns nothing about them: no answer names alice's task, project, title or user, and
nothing was done to her task. Only the public routes (health, metrics, the page, the OpenAPI
document) answer without a token, and they carry nothing of anybody's.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import httpx
import jwt
import pytest
from fastapi.routing import iter_route_contexts
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.integration.gateway.conftest import SECRET, Cluster, cluster  # noqa: F401
from tests.support.gateway import make_update
from ytmaker_gateway.api.ws import STREAMS
from ytmaker_gateway.settings import GatewaySettings
from ytmaker_shared.events import new_event_id

pytestmark = pytest.mark.kafka

TITLE = "Alice's unannounced launch"
#: Served to anybody; each is checked to name nobody.
PUBLIC = {
    "/healthz",
    "/readyz",
    "/metrics",
    "/",
    "/projects/{project_id}",
    "/static",
    "/openapi.json",
    "/docs",
    "/docs/oauth2-redirect",
    "/redoc",
}
#: Routes where another user's valid token legitimately succeeds, with their own data.
OWN_DATA = {
    ("POST", "/api/v1/projects"),
    ("GET", "/api/v1/progress/stats"),
    ("GET", "/api/v1/runs"),
}
WEBSOCKETS = {"/api/v1/ws", "/api/v1/projects/{project_id}/progress"}


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _claims(settings: GatewaySettings, user: str, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "sub": user,
        "roles": ["operator"],  # a role claimed in a bad token must not help either
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "iat": now,
        "exp": now + 600,
    }
    return claims | changes


def credentials(settings: GatewaySettings) -> dict[str, str | None]:
    """The five tokens that must not get in (None: no token at all)."""
    return {
        "none": None,
        "expired": jwt.encode(
            _claims(settings, "alice", exp=int(time.time()) - 3600), SECRET, algorithm="HS256"
        ),
        "forged": jwt.encode(_claims(settings, "alice"), SECRET + "x", algorithm="HS256"),
        "wrong-audience": jwt.encode(
            _claims(settings, "alice", aud="another-service"), SECRET, algorithm="HS256"
        ),
        "alg-none": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(_claims(settings, 'alice'))}.",
    }


def served(app: Any) -> tuple[list[tuple[str, str]], set[str]]:
    """Every (method, path) of HTTP routes and every WebSocket path the app serves: its
    routes, and the streams it serves beside FastAPI (decision 0108)."""
    http: list[tuple[str, str]] = []
    sockets: set[str] = set(STREAMS)
    for ctx in iter_route_contexts(app.routes):
        methods = getattr(ctx, "methods", None)
        if type(ctx.route).__name__.endswith("WebSocketRoute"):
            sockets.add(ctx.path)
        elif methods:
            http += [(m, ctx.path) for m in sorted(methods) if m != "HEAD"]
        else:
            http.append(("GET", ctx.path))  # a mount
    return http, sockets


class Alice:
    """Alice's task, project and a live connection of hers: what the others must not reach."""

    def __init__(self, task_id: str, project_id: str, client_id: str) -> None:
        self.task_id, self.project_id, self.client_id = task_id, project_id, client_id

    def fill(self, path: str) -> str:
        return (
            path.replace("{task_id}", self.task_id)
            .replace("{project_id}", self.project_id)
            .replace("{action}", "cancel")
            .replace("{name}", "script")
        )

    def secrets(self) -> list[str]:
        return [self.task_id, self.project_id, TITLE, "alice", self.client_id]


async def _request(
    http: httpx.AsyncClient, method: str, path: str, alice: Alice, token: str | None
) -> httpx.Response:
    url = alice.fill(path)
    params = {"client_id": alice.client_id} if "subscribe" in path else {}
    body = {"title": "Mine", "content": "Mine."} if path.endswith("/projects") else None
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    response = await http.request(method, url, params=params, json=body, headers=headers)
    if token is not None and path == "/api/v1/artifacts/{task_id}/{name}":  # also by ?token=
        by_query = await http.request(method, url, params={"token": token})
        assert by_query.status_code == response.status_code, (url, by_query.text)
        as_grant = await http.request(method, url, params={"grant": token})  # a token is none
        assert as_grant.status_code == 401, (url, as_grant.text)
    return response


def _leaks(text: str, alice: Alice) -> list[str]:
    return [s for s in alice.secrets() if s in text]


async def _world(cluster: Cluster) -> tuple[str, Any, Alice, ClientConnection]:  # noqa: F811
    replica = await cluster.replica(unknown_task_wait_s=0)
    task_id = new_event_id()
    await cluster.write(make_update(task_id, n=0, title=TITLE))
    project_id = cluster.fake.tasks[task_id]["project_id"]
    ws = await connect(f"{replica.ws}/api/v1/ws?token={cluster.token('alice')}")
    client_id = json.loads(await ws.recv())["payload"]["client_id"]
    await ws.send(json.dumps({"action": "subscribe", "task_id": task_id, "since": -1}))
    return replica.server.base, replica, Alice(task_id, project_id, client_id), ws


async def test_every_route_refuses_every_bad_credential_and_another_user(
    cluster: Cluster,  # noqa: F811 (the fixture)
) -> None:
    base, replica, alice, alice_ws = await _world(cluster)
    app = replica.server.server.config.app
    routes, sockets = served(app)
    assert sockets == WEBSOCKETS, "a new WebSocket: add it to this matrix"
    private = [(m, p) for m, p in routes if p not in PUBLIC]
    assert len(private) >= 14 and all(p.startswith("/api/v1/") for _, p in private)
    bad = credentials(cluster.settings)
    async with httpx.AsyncClient(base_url=base, timeout=20) as http:
        for method, path in private:
            for name, token in bad.items():
                response = await _request(http, method, path, alice, token)
                shown = (method, path, name, response.status_code, response.text[:200])
                assert response.status_code == 401, shown
                assert response.json()["error"]["code"] == "unauthorized", shown
                assert not _leaks(response.text, alice), shown
            mallory = await _request(http, method, path, alice, cluster.token("mallory"))
            shown = (method, path, "mallory", mallory.status_code, mallory.text[:300])
            assert not _leaks(mallory.text, alice), shown
            if (method, path) in OWN_DATA:
                assert mallory.is_success, shown
            else:
                assert mallory.status_code in (403, 404), shown
        for method, path in [(m, p) for m, p in routes if p in PUBLIC]:
            response = await http.request(method, alice.fill(path))
            assert response.status_code < 500 and not _leaks(response.text, alice), path
    # Nothing was done to alice's task: no control request was emitted for it.
    sent = replica.gateway.commands.producer.sent
    assert [event for _, event in sent if event.task_id == alice.task_id] == []
    await alice_ws.close()


async def _refused(url: str, headers: dict[str, str] | None = None) -> int | None:
    """The close code of a WebSocket that must be closed before any message."""
    async with connect(url, additional_headers=headers) as ws:
        try:
            message = await ws.recv()
        except ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd else None
        raise AssertionError(f"{url}: a message before the close: {message!r}"[:300])


async def test_both_websockets_refuse_every_bad_credential_and_another_user(
    cluster: Cluster,  # noqa: F811 (the fixture)
) -> None:
    _, replica, alice, alice_ws = await _world(cluster)
    paths = {p: alice.fill(p) for p in WEBSOCKETS}
    for name, token in credentials(cluster.settings).items():
        for path in paths.values():
            query = "" if token is None else f"?token={token}"
            assert await _refused(f"{replica.ws}{path}{query}") == 4401, (name, path)
            if token is not None:  # the header works as the query does
                header = {"Authorization": f"Bearer {token}"}
                assert await _refused(f"{replica.ws}{path}", header) == 4401, (name, path)
    mallory = cluster.token("mallory")
    url = f"{replica.ws}/api/v1/ws?token={mallory}&old_client_id={alice.client_id}"
    async with connect(url) as ws:
        hello = json.loads(await ws.recv())
        assert hello["type"] == "connected" and not _leaks(json.dumps(hello), alice)
        requests = [
            {"action": "subscribe", "task_id": alice.task_id, "since": -1},
            {"action": "subscribe", "task_id": alice.task_id, "since": None},
            {"action": "cancel", "task_id": alice.task_id},
            {"action": "pause", "task_id": alice.task_id},
        ]
        for request in requests:
            await ws.send(json.dumps(request))
            answer = json.loads(await ws.recv())
            assert answer["type"] == "error" and answer["payload"]["code"] == "forbidden", answer
            assert not _leaks(json.dumps(answer["payload"]), alice), answer
        await ws.send('{"type": "ping"}')
        assert json.loads(await ws.recv())["type"] == "pong"  # and nothing else came
    project = f"{replica.ws}{paths['/api/v1/projects/{project_id}/progress']}?token={mallory}"
    async with connect(project) as ws:
        assert json.loads(await ws.recv())["type"] == "connected"
        error = json.loads(await ws.recv())
        assert error["payload"]["code"] == "forbidden" and not _leaks(json.dumps(error), alice)
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403
    assert replica.gateway.commands.producer.sent == []
    await alice_ws.close()

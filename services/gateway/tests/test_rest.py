"""The REST API (docs/protocol.md "REST") against a fake read model: status codes, error bodies, who
may see and control what, and the events the gateway emits."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import Any

import jwt
import pytest
from prometheus_client import REGISTRY

from tests.support.gateway import PROJECT, make_state, make_update, stable_id
from ytmaker_gateway.auth import mint_token
from ytmaker_shared.events import CancelTask, PauseTask, TaskRequested
from ytmaker_shared.kafka import BrokerUnavailable
from ytmaker_shared.progress import TaskStatus
from ytmaker_shared.topics import Topic

from .conftest import SECRET, Factory, Harness

T1, T2, T3 = stable_id("t1"), stable_id("t2"), stable_id("t3")
T_BOB, T_DONE, T_NONE = stable_id("t-bob"), stable_id("t-done"), stable_id("no-such-task")
P1 = PROJECT


VALID = {"title": "Tides", "content": "The Moon pulls.", "settings": {"language": "en"}}


def _error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == code and body["error"]["message"]
    return dict(body["error"])


async def test_creating_a_project_emits_task_requested(gateway_factory: Factory) -> None:
    gw = await gateway_factory()
    response = await gw.http.post("/api/v1/projects", json=VALID, headers=gw.auth("alice"))
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["ws_url"].endswith("/api/v1/ws") and body["ws_url"].startswith("ws://")
    [(topic, event)] = gw.producer.sent
    assert topic is Topic.TASKS and isinstance(event, TaskRequested)
    assert (event.task_id, event.project_id, event.owner) == (
        body["task_id"],
        body["project_id"],
        "alice",
    )
    assert event.payload.title == "Tides" and event.payload.settings.language == "en"
    # Not folded by the read model yet, and still visible to its owner right away:
    state = await gw.http.get(f"/api/v1/progress/{body['task_id']}", headers=gw.auth("alice"))
    assert state.status_code == 200 and state.json()["status"] == "queued"
    other = await gw.http.get(f"/api/v1/progress/{body['task_id']}", headers=gw.auth("bob"))
    _error(other, 403, "forbidden")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"content": "x"}, "body.title"),
        ({**VALID, "title": "  "}, "body.title"),
        ({**VALID, "title": "x" * 201}, "body.title"),
        ({**VALID, "content": ""}, "body.content"),
        ({**VALID, "settings": {"language": "english"}}, "body.settings.language"),
        ({**VALID, "settings": {"segments": 0}}, "body.settings.segments"),
        ({**VALID, "settings": {"segments": True}}, "body.settings.segments"),  # not 1
        ({**VALID, "settings": {"segments": "4"}}, "body.settings.segments"),  # not 4
        (
            {**VALID, "settings": {"target_length_seconds": "60"}},
            "body.settings.target_length_seconds",
        ),
        # PostgreSQL's text cannot hold NUL: the read model could not store the project.
        ({**VALID, "title": "Ti\x00des"}, "body.title"),
        ({**VALID, "content": "\x00"}, "body.content"),
        (
            {**VALID, "settings": {"target_length_seconds": 5}},
            "body.settings.target_length_seconds",
        ),
        ({**VALID, "settings": {"privacy": "everyone"}}, "body.settings.privacy"),
        ({**VALID, "colour": "red"}, "body.colour"),
    ],
)
async def test_invalid_project_bodies_get_422_naming_the_field(
    gateway_factory: Factory, body: dict[str, Any], field: str
) -> None:
    gw = await gateway_factory()
    response = await gw.http.post("/api/v1/projects", json=body, headers=gw.auth())
    error = _error(response, 422, "invalid_request")
    assert field in [e["field"] for e in error["details"]["errors"]]
    assert gw.producer.sent == []


async def test_malformed_json_body_gets_422(gateway_factory: Factory) -> None:
    gw = await gateway_factory()
    response = await gw.http.post(
        "/api/v1/projects",
        content=b"{nope",
        headers=gw.auth() | {"content-type": "application/json"},
    )
    _error(response, 422, "invalid_request")


@pytest.mark.parametrize("auth", [None, "Bearer nope", "Basic abc", "Bearer " + "e30." * 3])
async def test_every_endpoint_needs_a_valid_token(
    gateway_factory: Factory, auth: str | None
) -> None:
    gw = await gateway_factory()
    headers = {"Authorization": auth} if auth else {}
    for method, path in [
        ("POST", "/api/v1/projects"),
        ("GET", f"/api/v1/progress/{T1}"),
        ("GET", "/api/v1/progress/stats"),
        ("GET", f"/api/v1/artifacts/{T1}/video"),
        ("POST", f"/api/v1/tasks/{T1}/cancel"),
    ]:
        response = await gw.http.request(method, path, headers=headers, json=VALID)
        _error(response, 401, "unauthorized")
        assert response.headers["www-authenticate"] == 'Bearer realm="ytmaker"'  # RFC 9110


async def test_anonymous_access_only_with_the_development_flag(gateway_factory: Factory) -> None:
    gw = await gateway_factory(dev_allow_anonymous=True)
    response = await gw.http.post("/api/v1/projects", json=VALID)
    assert response.status_code == 201
    assert gw.producer.sent[0][1].owner == "dev"


async def test_someone_elses_task_and_an_unknown_task_look_the_same(
    gateway_factory: Factory,
) -> None:
    gw = await gateway_factory()
    gw.fake.put_task(make_state(T_BOB, owner="bob"))
    a = _error(
        await gw.http.get(f"/api/v1/progress/{T_BOB}", headers=gw.auth("alice")), 403, "forbidden"
    )
    b = _error(
        await gw.http.get(f"/api/v1/progress/{T_NONE}", headers=gw.auth("alice")), 403, "forbidden"
    )
    assert a == b
    ok = await gw.http.get(f"/api/v1/progress/{T_BOB}", headers=gw.auth("ops", "operator"))
    assert ok.status_code == 200 and ok.json()["owner"] == "bob"


@pytest.mark.parametrize(
    ("status", "action", "accepted"),
    [
        ("running", "cancel", True),
        ("queued", "cancel", True),
        ("paused", "cancel", True),
        ("completed", "cancel", False),
        ("failed", "cancel", False),
        ("cancelled", "cancel", False),
        ("running", "pause", True),
        ("paused", "pause", False),
        ("completed", "pause", False),
        ("paused", "resume", True),
        ("running", "resume", False),
        ("cancelled", "resume", False),
    ],
)
async def test_control_requests_follow_the_task_state(
    gateway_factory: Factory, status: str, action: str, accepted: bool
) -> None:
    gw = await gateway_factory()
    gw.fake.put_task(make_state(T1, owner="alice", status=TaskStatus(status)))
    response = await gw.http.post(
        f"/api/v1/tasks/{T1}/{action}", headers=gw.auth("alice"), json={"reason": "test"}
    )
    if accepted:
        assert response.status_code == 202, response.text
        [(topic, event)] = gw.producer.sent
        assert topic is Topic.CONTROL and event.type == f"task.{action}_requested"
        assert event.payload.requested_by == "alice" and event.owner == "alice"
    else:
        error = _error(response, 409, "conflict")
        assert error["details"]["status"] == status and gw.producer.sent == []


async def test_a_control_request_is_judged_by_the_status_its_client_was_shown(
    gateway_factory: Factory,
) -> None:
    """The stream reaches clients before the read model folds the same update: a client that
    was just shown `paused` may resume at once, and may not pause again."""
    gw = await gateway_factory()
    gw.seed(T1, n=1)  # running, folded into the read model
    gw.log.append(make_update(T1, n=1, status=TaskStatus.PAUSED))  # streamed only
    error = _error(
        await gw.http.post(f"/api/v1/tasks/{T1}/pause", headers=gw.auth()), 409, "conflict"
    )
    assert error["details"]["status"] == "paused"
    resume = await gw.http.post(f"/api/v1/tasks/{T1}/resume", headers=gw.auth())
    assert resume.status_code == 202, resume.text
    # once the read model has a later update, it is the one that counts
    gw.seed(T1, n=1)  # running again, at a later offset than anything streamed
    _error(await gw.http.post(f"/api/v1/tasks/{T1}/resume", headers=gw.auth()), 409, "conflict")


async def test_nobody_controls_someone_elses_task(gateway_factory: Factory) -> None:
    gw = await gateway_factory()
    gw.fake.put_task(make_state(T1, owner="bob"))
    _error(
        await gw.http.post(f"/api/v1/tasks/{T1}/cancel", headers=gw.auth("alice")), 403, "forbidden"
    )
    ok = await gw.http.post(f"/api/v1/tasks/{T1}/pause", headers=gw.auth("ops", "operator"))
    assert ok.status_code == 202
    assert isinstance(gw.producer.sent[0][1], PauseTask)
    _error(
        await gw.http.post(f"/api/v1/tasks/{T1}/explode", headers=gw.auth()), 422, "invalid_request"
    )
    assert not any(isinstance(e, CancelTask) for _, e in gw.producer.sent)


async def test_projects_and_new_runs(gateway_factory: Factory) -> None:
    gw = await gateway_factory()
    gw.fake.put_task(make_state(T1, owner="alice", project_id=P1))
    project = await gw.http.get(f"/api/v1/projects/{P1}", headers=gw.auth("alice"))
    assert project.status_code == 200 and project.json()["tasks"][0]["task_id"] == T1
    _error(await gw.http.get(f"/api/v1/projects/{P1}", headers=gw.auth("bob")), 403, "forbidden")
    run = await gw.http.post(f"/api/v1/projects/{P1}/tasks", headers=gw.auth("alice"))
    assert run.status_code == 201 and run.json()["project_id"] == P1
    [(_, event)] = gw.producer.sent
    assert isinstance(event, TaskRequested) and event.project_id == P1
    assert event.payload.content == "Some content."


async def test_a_project_created_a_moment_ago_is_waited_for(gateway_factory: Factory) -> None:
    """The read model folds a new project a moment after it is created: its owner may read it
    (or start another run of it) right away; nobody else learns that it exists."""
    gw = await gateway_factory(unknown_task_wait_s=5.0)
    created = await gw.http.post("/api/v1/projects", json=VALID, headers=gw.auth("alice"))
    started = created.json()
    path = f"/api/v1/projects/{started['project_id']}"
    _error(await gw.http.get(path, headers=gw.auth("bob")), 403, "forbidden")

    async def fold_a_moment_later() -> None:
        await asyncio.sleep(0.3)
        state = make_state(started["task_id"], project_id=started["project_id"], title="Tides")
        gw.fake.put_task(state)

    folding = asyncio.create_task(fold_a_moment_later())
    project = await gw.http.get(path, headers=gw.auth("alice"))
    await folding
    assert project.status_code == 200, project.text
    assert [t["task_id"] for t in project.json()["tasks"]] == [started["task_id"]]


async def test_a_new_project_the_read_model_has_not_folded_is_unavailable(
    gateway_factory: Factory,
) -> None:
    gw = await gateway_factory()  # waits 0.3 s
    created = await gw.http.post("/api/v1/projects", json=VALID, headers=gw.auth("alice"))
    project_id = created.json()["project_id"]
    _error(
        await gw.http.get(f"/api/v1/projects/{project_id}", headers=gw.auth()), 503, "unavailable"
    )
    again = await gw.http.post(f"/api/v1/projects/{project_id}/tasks", headers=gw.auth())
    _error(again, 503, "unavailable")
    _error(await gw.http.get(f"/api/v1/projects/{T_NONE}", headers=gw.auth()), 403, "forbidden")


async def test_history_stats_and_deletion(gateway_factory: Factory) -> None:
    gw = await gateway_factory()
    from tests.support.gateway import make_update

    for n in range(3):
        gw.fake.record(n * 2, make_update(T1, n=n, progress=n))
    gw.fake.put_task(make_state(T2, owner="bob", status=TaskStatus.COMPLETED))
    memory = await gw.http.get(f"/api/v1/progress/{T1}/history?since=0", headers=gw.auth())
    assert memory.json()["source"] == "memory"
    assert [i["offset"] for i in memory.json()["items"]] == [2, 4]
    db = await gw.http.get(f"/api/v1/progress/{T1}/history/db?limit=1", headers=gw.auth())
    assert db.json()["source"] == "database" and len(db.json()["items"]) == 1
    _error(
        await gw.http.get(f"/api/v1/progress/{T1}/history?limit=0", headers=gw.auth()),
        422,
        "invalid_request",
    )
    mine = (await gw.http.get("/api/v1/progress/stats", headers=gw.auth("alice"))).json()
    every = (await gw.http.get("/api/v1/progress/stats", headers=gw.auth("o", "operator"))).json()
    assert mine["total_tasks"] == 1 and every["total_tasks"] == 2 and every["completed_tasks"] == 1
    _error(
        await gw.http.delete(f"/api/v1/progress/{T1}/history", headers=gw.auth()), 409, "conflict"
    )
    deleted = await gw.http.delete(f"/api/v1/progress/{T2}/history", headers=gw.auth("bob"))
    assert deleted.status_code == 204


async def test_clearing_the_history_of_a_task_not_folded_yet_is_a_conflict(
    gateway_factory: Factory,
) -> None:
    """A run started a moment ago is queued to its owner (GET answers it): clearing its
    history is refused because it has not finished, not as somebody else's task."""
    gw = await gateway_factory()
    created = await gw.http.post("/api/v1/projects", json=VALID, headers=gw.auth("alice"))
    task_id = created.json()["task_id"]
    shown = await gw.http.get(f"/api/v1/progress/{task_id}", headers=gw.auth("alice"))
    assert shown.status_code == 200 and shown.json()["status"] == "queued"
    deleted = await gw.http.delete(f"/api/v1/progress/{task_id}/history", headers=gw.auth())
    assert _error(deleted, 409, "conflict")["details"]["status"] == "queued"
    other = await gw.http.delete(f"/api/v1/progress/{task_id}/history", headers=gw.auth("bob"))
    _error(other, 403, "forbidden")


async def test_operator_views_need_the_operator_role(gateway_factory: Factory) -> None:
    gw = await gateway_factory()
    for path in ("/api/v1/progress/active", "/api/v1/websocket/stats"):
        _error(await gw.http.get(path, headers=gw.auth("alice")), 403, "forbidden")
        ok = await gw.http.get(path, headers=gw.auth("o", "operator"))
        assert ok.status_code == 200 and "total_clients" in ok.json()


async def test_an_unavailable_read_model_gives_503(gateway_factory: Factory) -> None:
    gw = await gateway_factory()
    gw.fake.down = True
    _error(await gw.http.get(f"/api/v1/progress/{T1}", headers=gw.auth()), 503, "unavailable")


async def test_artifacts_are_served_to_their_owner_with_ranges(gateway_factory: Factory) -> None:
    gw = await gateway_factory()
    video = bytes(range(256)) * 40
    stored = await gw.gateway.artifacts.put(f"{T1}/render/video.mp4", video, "video/mp4")
    await gw.gateway.artifacts.put(f"{T1}/script/script.json", b'{"segments": []}')
    result = {"video_uri": "file:///published/elsewhere.mp4", "source_video_uri": stored.uri}
    gw.fake.put_task(make_state(T1, status=TaskStatus.COMPLETED, result=result))
    full = await gw.http.get(f"/api/v1/artifacts/{T1}/video", headers=gw.auth("alice"))
    assert full.status_code == 200 and full.content == video
    assert full.headers["content-type"] == "video/mp4"
    part = await gw.http.get(
        f"/api/v1/artifacts/{T1}/video", headers=gw.auth("alice") | {"Range": "bytes=100-199"}
    )
    assert part.status_code == 206 and part.content == video[100:200]
    in_url = {"route": "artifact"}
    before = REGISTRY.get_sample_value("ytmaker_gateway_tokens_in_url_total", in_url) or 0
    query = await gw.http.get(f"/api/v1/artifacts/{T1}/video?token={gw.token('alice')}")
    assert query.status_code == 200  # deprecated, still served, and counted:
    assert REGISTRY.get_sample_value("ytmaker_gateway_tokens_in_url_total", in_url) == before + 1
    _error(
        await gw.http.get(f"/api/v1/artifacts/{T1}/video", headers=gw.auth("bob")), 403, "forbidden"
    )
    script = await gw.http.get(f"/api/v1/artifacts/{T1}/script", headers=gw.auth())
    assert script.status_code == 200 and script.json() == {"segments": []}
    _error(
        await gw.http.get(f"/api/v1/artifacts/{T1}/thumbnail", headers=gw.auth()), 404, "not_found"
    )
    _error(await gw.http.get(f"/api/v1/artifacts/{T1}/passwd", headers=gw.auth()), 404, "not_found")


# --- links to artifacts (docs/decisions/0134) ------------------------------------------------


async def _video(gw: Harness, task_id: str = T1, owner: str = "alice") -> bytes:
    video = bytes(range(256)) * 40
    stored = await gw.gateway.artifacts.put(f"{task_id}/render/video.mp4", video, "video/mp4")
    await gw.gateway.artifacts.put(f"{task_id}/script/script.json", b'{"segments": []}')
    result = {"source_video_uri": stored.uri}
    gw.fake.put_task(make_state(task_id, owner=owner, status=TaskStatus.COMPLETED, result=result))
    return video


async def _link(gw: Harness, name: str = "video", task_id: str = T1, **auth: str) -> Any:
    return await gw.http.get(f"/api/v1/artifacts/{task_id}/{name}/link", headers=auth)


async def test_a_link_opens_its_artifact_without_the_header_ranges_included(
    gateway_factory: Factory,
) -> None:
    """A `<video src>` cannot send the Authorization header: the link carries a grant for this
    artifact instead of the user's token, which must never be in a URL."""
    gw = await gateway_factory(artifact_link_ttl_s=600)
    video = await _video(gw)
    token = gw.token("alice")
    before = time.time()
    answer = await _link(gw, Authorization=f"Bearer {token}")
    assert answer.status_code == 200, answer.text
    link = answer.json()
    assert set(link) == {"url", "expires_at"}
    url = link["url"]
    assert url.startswith(f"/api/v1/artifacts/{T1}/video?grant=") and token not in url
    expires = datetime.fromisoformat(link["expires_at"]).timestamp()
    assert before + 600 - 2 <= expires <= time.time() + 600 + 1
    full = await gw.http.get(url)
    assert full.status_code == 200 and full.content == video
    assert full.headers["content-type"] == "video/mp4"
    part = await gw.http.get(url, headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == video[100:200]


async def test_a_grant_opens_nothing_but_its_artifact(gateway_factory: Factory) -> None:
    gw = await gateway_factory()
    await _video(gw, T1)
    await _video(gw, T2)  # alice's too
    url = (await _link(gw, **gw.auth("alice"))).json()["url"]
    grant = url.partition("?")[2]
    for other in (f"/api/v1/artifacts/{T1}/script", f"/api/v1/artifacts/{T2}/video"):
        _error(await gw.http.get(f"{other}?{grant}"), 403, "forbidden")
    script = (await _link(gw, "script", **gw.auth("alice"))).json()["url"]
    assert (await gw.http.get(script)).json() == {"segments": []}


async def test_an_expired_or_forged_grant_is_refused(gateway_factory: Factory) -> None:
    gw = await gateway_factory()
    await _video(gw)
    url = (await _link(gw, **gw.auth("alice"))).json()["url"]
    path, _, query = url.partition("?grant=")
    claims = jwt.decode(query, options={"verify_signature": False})
    expired = jwt.encode(claims | {"exp": int(time.time()) - 3600}, SECRET, algorithm="HS256")
    forged = jwt.encode(claims, SECRET + "x", algorithm="HS256")
    for grant in (expired, forged, "garbage"):
        refused = _error(await gw.http.get(path, params={"grant": grant}), 401, "unauthorized")
        assert grant not in refused["message"]


async def test_a_grant_is_no_bearer_token_and_a_bearer_token_no_grant(
    gateway_factory: Factory,
) -> None:
    """Two audiences: a grant found in a log opens one artifact for a while, nothing else."""
    gw = await gateway_factory()
    await _video(gw)
    url = (await _link(gw, **gw.auth("alice"))).json()["url"]
    path, _, grant = url.partition("?grant=")
    as_bearer = {"Authorization": f"Bearer {grant}"}
    for other in (path, f"/api/v1/progress/{T1}", f"{path}/link"):
        _error(await gw.http.get(other, headers=as_bearer), 401, "unauthorized")
    _error(await gw.http.get(path, params={"grant": gw.token("alice")}), 401, "unauthorized")


async def test_a_link_is_refused_as_the_download_is(gateway_factory: Factory) -> None:
    """Somebody else's task and an unknown one: the same 403 as the download itself."""
    gw = await gateway_factory()
    await _video(gw)
    await _video(gw, T_BOB, owner="bob")
    for task_id in (T_BOB, T_NONE):
        link = _error(await _link(gw, task_id=task_id, **gw.auth("alice")), 403, "forbidden")
        download = await gw.http.get(f"/api/v1/artifacts/{task_id}/video", headers=gw.auth())
        assert link == _error(download, 403, "forbidden")
    _error(await _link(gw, "passwd", **gw.auth("alice")), 404, "not_found")
    _error(await _link(gw), 401, "unauthorized")
    by_query = await gw.http.get(f"/api/v1/artifacts/{T1}/video/link?token={gw.token()}")
    _error(by_query, 401, "unauthorized")  # a link is asked for with the header only
    _error(await _link(gw, task_id="not-an-id", **gw.auth("alice")), 422, "invalid_request")
    bobs = (await _link(gw, task_id=T_BOB, **gw.auth("ops", "operator"))).json()["url"]
    assert (await gw.http.get(bobs)).status_code == 200  # an operator sees every task


async def test_without_a_secret_an_anonymous_link_needs_no_grant(
    gateway_factory: Factory,
) -> None:
    """Development without YTMAKER_JWT_SECRET: nothing can be signed, and nothing is needed."""
    gw = await gateway_factory(jwt_secret=None, dev_allow_anonymous=True)
    video = await _video(gw, owner="dev")
    url = (await _link(gw)).json()["url"]
    assert url == f"/api/v1/artifacts/{T1}/video"
    assert (await gw.http.get(url)).content == video


async def test_a_link_never_outlives_the_token_it_was_asked_with(
    gateway_factory: Factory,
) -> None:
    gw = await gateway_factory(jwt_leeway_s=0)
    await _video(gw)
    token = mint_token(gw.gateway.tokens, "alice", ttl_s=60)
    link = (await _link(gw, Authorization=f"Bearer {token}")).json()
    assert datetime.fromisoformat(link["expires_at"]).timestamp() <= time.time() + 61


async def test_security_headers_openapi_and_the_page(gateway_factory: Factory) -> None:
    gw = await gateway_factory()
    page = await gw.http.get("/")
    assert page.status_code == 200 and "<form" in page.text
    assert page.headers["x-content-type-options"] == "nosniff"
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert (await gw.http.get(f"/projects/{P1}")).status_code == 200
    assert (await gw.http.get("/static/app.js")).status_code == 200
    spec = (await gw.http.get("/openapi.json")).json()
    assert "/api/v1/projects" in spec["paths"]
    assert spec["components"]["schemas"]["ProjectCreate"]["examples"]
    assert (await gw.http.get("/healthz")).status_code == 200
    assert "ytmaker_gateway_messages_sent_total" in (await gw.http.get("/metrics")).text


async def test_a_method_not_allowed_names_the_allowed_ones(gateway_factory: Factory) -> None:
    """RFC 9110 §15.5.6: a 405 carries `Allow`."""
    gw = await gateway_factory()
    response = await gw.http.put("/api/v1/projects", headers=gw.auth(), json=VALID)
    _error(response, 405, "method_not_allowed")
    assert response.headers.get("allow") == "POST"


async def test_the_openapi_document_declares_every_answer_of_an_artifact(
    gateway_factory: Factory,
) -> None:
    """A `Range` gets 206 or 416 (docs/protocol.md), and a thumbnail may be a PNG: the
    document must say so, as it does for every other answer."""
    gw = await gateway_factory()
    spec = (await gw.http.get("/openapi.json")).json()
    answers = spec["paths"]["/api/v1/artifacts/{task_id}/{name}"]["get"]["responses"]
    assert {"200", "206", "416"} <= set(answers)
    for status in ("200", "206"):
        assert {"video/mp4", "image/jpeg", "image/png", "application/json"} <= set(
            answers[status]["content"]
        )
    assert answers["416"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorBody"
    }


async def test_cors_allowlist(gateway_factory: Factory) -> None:
    gw = await gateway_factory(cors_origins="https://app.example")
    allowed = await gw.http.options(
        "/api/v1/projects",
        headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST"},
    )
    assert allowed.headers.get("access-control-allow-origin") == "https://app.example"
    denied = await gw.http.options(
        "/api/v1/projects",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in denied.headers


async def test_an_unavailable_log_says_so_without_its_addresses(
    gateway_factory: Factory, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The broker's address and the topic are the operators' business: logged, not sent."""
    gw = await gateway_factory()
    why = "no Kafka broker at kafka-3.internal:9092 after 30s: pipeline.tasks not acknowledged"

    async def refused(*_: object) -> None:
        raise BrokerUnavailable(why)

    monkeypatch.setattr(gw.producer, "send", refused)
    response = await gw.http.post("/api/v1/projects", json=VALID, headers=gw.auth())
    error = _error(response, 503, "unavailable")
    assert "kafka-3" not in response.text and "pipeline.tasks" not in response.text
    assert error["message"] == "the event log is unavailable, try again"
    assert any(
        why in record.getMessage() or why in str(record.__dict__) for record in caplog.records
    )

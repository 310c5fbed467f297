"""The progress service's internal API: every route requires the service credential, and no
client input makes it answer 5xx."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute

from ytmaker_progress.api import create_app
from ytmaker_progress.readmodel.memory import RecentHistory
from ytmaker_progress.readmodel.rows import Rows, add_update
from ytmaker_progress.readmodel.store import Store

TOKEN = "internal-test-credential-0123456789"
TASK = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[Any]:
    store = Store(f"sqlite:///{tmp_path / 'read.db'}")
    yield create_app(store, RecentHistory(), token=TOKEN, epoch=lambda: "e", ready=lambda: True)
    store.close()


def _routes(app: Any) -> list[tuple[str, str]]:
    """Every (method, path) the app serves, read from the app itself so that a new route
    cannot escape the matrix; path parameters filled with a plausible task id."""
    out = []
    for route in app.routes:
        assert isinstance(route, APIRoute), f"{route} is served outside the credential check"
        path = route.path.replace("{task_id}", TASK).replace("{project_id}", TASK)
        out += [(method, path) for method in sorted(route.methods)]
    return out


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        f"Bearer {TOKEN[:-1]}",
        f"Bearer {TOKEN}x",
        f"bearer{TOKEN}",
        f"Basic {TOKEN}",
        TOKEN,
    ],
)
async def test_every_route_refuses_a_caller_without_the_credential(
    app: Any, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"authorization": authorization}
    routes = _routes(app)
    assert len(routes) >= 13, routes  # the matrix covers the whole API, health included
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://progress", headers=headers
    ) as http:
        for method, path in routes:
            answer = await http.request(method, path, json={})
            assert answer.status_code == 401, (method, path, answer.text)
            assert answer.json()["error"]["code"] == "unauthorized"


async def test_the_credential_opens_every_route(app: Any) -> None:
    headers = {"authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://progress", headers=headers
    ) as http:
        for method, path in _routes(app):
            answer = await http.request(method, path, json={})
            assert answer.status_code not in (401, 403), (method, path, answer.text)
            assert answer.status_code < 500, (method, path, answer.text)


@pytest.mark.parametrize(
    "query",
    [
        "since=99999999999999999999",
        "since=-2",
        "since=1e3",
        "limit=0",
        "limit=99999999999999999999",
        "source=disk",
    ],
)
async def test_out_of_range_history_queries_get_422(app: Any, query: str) -> None:
    headers = {"authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://progress", headers=headers
    ) as http:
        answer = await http.get(f"/internal/v1/tasks/{TASK}/history?{query}")
        assert answer.status_code == 422, answer.text
        after = await http.get(f"/internal/v1/tasks/{TASK}/updates?after=99999999999999999999")
        assert after.status_code == 422, after.text


def test_the_app_cannot_be_made_without_a_credential(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'read.db'}")
    try:
        with pytest.raises(ValueError, match="YTMAKER_INTERNAL_TOKEN"):
            create_app(store, RecentHistory(), token="", epoch=lambda: None, ready=lambda: True)
    finally:
        store.close()


async def test_a_lookup_answers_the_known_tasks_and_refuses_bad_lists(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'read.db'}")
    rows = Rows()
    for offset, task_id in enumerate(("t-a", "t-b")):
        state = {"task_id": task_id, "project_id": "p", "owner": "alice", "status": "running"}
        state |= {"progress": 1.0, "stages": {}}
        update = {"task_id": task_id, "occurred_at": "2026-12-01T10:00:00Z", "state": state}
        add_update(rows, offset, "e", json.dumps(update).encode())
    store.write(rows, {})
    app = create_app(store, RecentHistory(), token=TOKEN, epoch=lambda: "e", ready=lambda: True)
    headers = {"authorization": f"Bearer {TOKEN}"}
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://progress", headers=headers
        ) as http:
            answer = await http.post(
                "/internal/v1/tasks/lookup", json={"task_ids": ["t-b", "nobody", "t-a", "t-b"]}
            )
            assert answer.status_code == 200, answer.text
            found = {s["task_id"]: s for s in answer.json()["items"]}
            assert sorted(found) == ["t-a", "t-b"]
            assert (found["t-b"]["offset"], found["t-b"]["owner"]) == (1, "alice")
            for bad in ([], ["t"] * 1001, ["x" * 65], [""], "t-a", [1]):
                refused = await http.post("/internal/v1/tasks/lookup", json={"task_ids": bad})
                assert refused.status_code == 422, (bad, refused.text)
    finally:
        store.close()

"""The exported contract (shared/schemas/gateway.schema.json) is what the models say, and what
a real session sends is what the contract says; `GET /runs` lists the caller's runs."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from pydantic import TypeAdapter
from websockets.asyncio.client import connect

from tests.support.gateway import PROJECT, make_state, make_update, stable_id
from ytmaker_gateway import schema
from ytmaker_gateway.api.messages import ServerMessage
from ytmaker_shared.progress import TaskStatus, UpdateType

from .conftest import Factory

T1, DONE = stable_id("t1"), stable_id("t-done")
SERVER_MESSAGE: TypeAdapter[Any] = TypeAdapter(ServerMessage)


def test_the_committed_schema_is_current() -> None:
    committed = schema.SCHEMA_FILE.read_text(encoding="utf-8")
    assert committed == schema.render(), "run: .venv/bin/python -m ytmaker_gateway.schema"


async def test_every_message_of_a_session_matches_the_contract(gateway_factory: Factory) -> None:
    gw = await gateway_factory(heartbeat_interval_s=0.5)
    for i in range(3):
        update = make_update(T1, n=i, progress=i * 10)
        gw.fake.record(gw.log.append(update), update)
    gw.fake.put_task(make_state(DONE, status=TaskStatus.COMPLETED))
    seen: dict[str, dict[str, Any]] = {}
    async with connect(f"{gw.ws}/api/v1/ws?token={gw.token()}") as ws:

        async def until(kind: str) -> None:
            deadline = asyncio.get_running_loop().time() + 10
            while kind not in seen:
                try:
                    async with asyncio.timeout_at(deadline):
                        msg = json.loads(await ws.recv())
                except TimeoutError:
                    raise AssertionError(f"no {kind!r} message; seen {sorted(seen)}") from None
                SERVER_MESSAGE.validate_python(msg)  # raises on any mismatch
                seen.setdefault(msg["type"], msg)
                if msg["type"] == "ping":
                    await ws.send(json.dumps({"action": "pong"}))

        await until("connected")
        await ws.send(json.dumps({"action": "subscribe", "task_id": T1, "since": None}))
        await until("snapshot")
        live = make_update(T1, n=3, progress=30)  # on one connection each update goes once
        gw.fake.record(gw.log.append(live), live)
        await until("progress")
        paused = make_update(T1, n=7, kind=UpdateType.STATUS, status=TaskStatus.PAUSED)
        gw.fake.record(gw.log.append(paused), paused)
        await until("status")
        await ws.send(json.dumps({"action": "resume", "task_id": T1}))
        await until("ack")
        await ws.send(json.dumps({"action": "cancel", "task_id": DONE}))
        await until("error")
        await ws.send(json.dumps({"type": "ping"}))
        await until("pong")
        await until("ping")
        await ws.send(json.dumps({"action": "unsubscribe", "task_id": T1}))
        await until("unsubscribed")
        old = seen["connected"]["payload"]["client_id"]
    async with connect(f"{gw.ws}/api/v1/ws?token={gw.token()}&old_client_id={old}") as ws:
        SERVER_MESSAGE.validate_python(json.loads(await ws.recv()))
    async with connect(f"{gw.ws}/api/v1/projects/{PROJECT}/progress?token={gw.token()}") as ws:
        assert SERVER_MESSAGE.validate_python(json.loads(await ws.recv())).type == "connected"
        initial = SERVER_MESSAGE.validate_python(json.loads(await ws.recv()))
        assert initial.type == "initial" and initial.payload.project_id == PROJECT
    assert {"subscribed", "snapshot", "progress", "status", "ack", "error"} <= set(seen)


async def test_runs_lists_the_callers_runs_filtered(gateway_factory: Factory) -> None:
    gw = await gateway_factory()
    gw.fake.put_task(make_state(T1))
    p2 = stable_id("p2")
    gw.fake.put_task(make_state("t2", status=TaskStatus.COMPLETED, project_id=p2))
    gw.fake.put_task(make_state("t-bob", owner="bob"))
    mine = (await gw.http.get("/api/v1/runs", headers=gw.auth())).json()["items"]
    assert sorted(t["task_id"] for t in mine) == [T1, "t2"]
    done = await gw.http.get(f"/api/v1/runs?project_id={p2}", headers=gw.auth())
    assert [t["task_id"] for t in done.json()["items"]] == ["t2"]
    everyone = await gw.http.get("/api/v1/runs?all=true", headers=gw.auth("op", "operator"))
    assert len(everyone.json()["items"]) == 3
    not_op = await gw.http.get("/api/v1/runs?all=true", headers=gw.auth())
    assert len(not_op.json()["items"]) == 2
    for query in ("status=sleeping", "project_id=p2", "project_id=" + "0" * 37):
        bad = await gw.http.get(f"/api/v1/runs?{query}", headers=gw.auth())
        assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_request"
    assert (await gw.http.get("/api/v1/runs")).status_code == 401

"""The gateway's client of the progress read model: its requests take turns (decision 0084);
the task lookups of a moment go out together (decision 0086)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request

from tests.emulators.base import EmulatorServer
from tests.support.forward_proxy import ForwardProxy, clear_proxy_settings
from tests.support.wait import wait_until
from ytmaker_gateway.adapters.progress_api import LOOKUP_BATCH, ProgressApi, ProgressUnavailable


class _HeldReadModel:
    """Answers once `release` is set; counts the requests in flight and keeps the lookups asked.
    A project is its id and owner; a lookup finds every task whose id starts with `t`."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.in_flight = 0
        self.most = 0
        self.lookups: list[list[str]] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        try:
            await self.release.wait()
        finally:
            self.in_flight -= 1
        if request.url.path.endswith("/tasks/lookup"):
            asked = json.loads(request.content)["task_ids"]
            self.lookups.append(asked)
            found = [{"task_id": t, "owner": "u"} for t in asked if t.startswith("t")]
            return httpx.Response(200, json={"items": found})
        project_id = request.url.path.rsplit("/", 1)[-1]
        return httpx.Response(200, json={"project_id": project_id, "owner": "u"})


def _api(model: _HeldReadModel, **options: Any) -> ProgressApi:
    return ProgressApi("http://progress", transport=httpx.MockTransport(model), **options)


async def test_a_crowd_of_requests_takes_turns_and_every_one_is_answered() -> None:
    model = _HeldReadModel()
    api = _api(model, in_flight=4)
    try:
        asked = [asyncio.create_task(api.project(f"p{n}")) for n in range(200)]
        await wait_until(lambda: model.in_flight == 4, timeout=10, what="the first turns")
        model.release.set()
        answers = await asyncio.gather(*asked)
        assert [a["project_id"] for a in answers if a] == [f"p{n}" for n in range(200)]
        assert model.most == 4
    finally:
        await api.close()


async def test_a_request_that_waits_too_long_for_its_turn_is_unavailable() -> None:
    model = _HeldReadModel()
    api = _api(model, in_flight=1, queue_timeout_s=0.2)
    try:
        first = asyncio.create_task(api.project("p1"))
        await wait_until(lambda: model.in_flight == 1, timeout=10, what="the first request")
        with pytest.raises(ProgressUnavailable, match="too many requests waiting"):
            await api.task("t2")
        assert not await api.caught_up()  # no turn either: not known to be caught up
        model.release.set()
        assert (await first) == {"project_id": "p1", "owner": "u"}
    finally:
        await api.close()


async def test_the_lookups_of_a_moment_go_in_batches_and_each_caller_gets_its_own() -> None:
    model = _HeldReadModel()
    model.release.set()
    api = _api(model)
    try:
        task_ids = [f"t{n}" for n in range(250)] + ["t0", "t1", "unknown"]
        callers = [asyncio.create_task(api.task(t)) for t in task_ids]
        answers = await asyncio.gather(*callers)
        # 251 distinct tasks: three requests, every task asked once
        assert sorted(len(batch) for batch in model.lookups) == [51, LOOKUP_BATCH, LOOKUP_BATCH]
        assert sorted(t for batch in model.lookups for t in batch) == sorted(set(task_ids))
        assert [a and a["task_id"] for a in answers] == [*task_ids[:-1], None]
        assert answers[0] == answers[250] and answers[0] is not answers[250]

        # a task id no read model holds is unknown without asking
        assert await api.task("t" * 65) is None
        assert await api.task("") is None
        assert len(model.lookups) == 3
    finally:
        await api.close()


async def test_a_caller_that_goes_away_does_not_take_the_answer_from_the_others() -> None:
    model = _HeldReadModel()
    api = _api(model)
    try:
        leaving, staying = asyncio.create_task(api.task("t1")), asyncio.create_task(api.task("t1"))
        await wait_until(lambda: model.in_flight == 1, timeout=10, what="the lookup")
        leaving.cancel()
        model.release.set()
        assert (await staying) == {"task_id": "t1", "owner": "u"}
        assert leaving.cancelled()
        assert model.lookups == [["t1"]]
    finally:
        await api.close()


@pytest.mark.parametrize(
    "answer",
    [httpx.Response(503), httpx.Response(200, json={"no": "items"}), httpx.Response(200, text="[")],
    ids=["down", "no items", "not json"],
)
async def test_a_lookup_the_read_model_cannot_answer_is_unavailable_for_every_caller(
    answer: httpx.Response,
) -> None:
    api = ProgressApi("http://progress", transport=httpx.MockTransport(lambda _: answer))
    try:
        answers = await asyncio.gather(api.task("t1"), api.task("t2"), return_exceptions=True)
        assert all(isinstance(a, ProgressUnavailable) for a in answers)
    finally:
        await api.close()


async def test_the_read_model_is_called_straight_whatever_proxy_the_environment_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The read side is inside the deployment: its calls, and the service credential they
    carry, never go to an egress proxy `HTTP(S)_PROXY` names for the external services."""
    app = FastAPI()

    @app.get("/internal/v1/projects/{project_id}")
    async def project(project_id: str, request: Request) -> dict[str, str]:
        assert request.headers["authorization"] == "Bearer internal-secret"
        return {"project_id": project_id, "owner": "u"}

    clear_proxy_settings(monkeypatch)
    async with ForwardProxy() as proxy, EmulatorServer(app) as read_side:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.setenv("ALL_PROXY", proxy.url)
        api = ProgressApi(read_side.url, token="internal-secret")
        try:
            assert await api.project("p1") == {"project_id": "p1", "owner": "u"}
        finally:
            await api.close()
    assert proxy.seen == []

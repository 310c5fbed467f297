"""The gateway's client of the progress read model: its requests take turns (decision 0084)."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.support.wait import wait_until
from ytmaker_gateway.adapters.progress_api import ProgressApi, ProgressUnavailable


class _HeldReadModel:
    """Answers every task lookup once `release` is set; counts the lookups in flight."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.in_flight = 0
        self.most = 0

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        try:
            await self.release.wait()
        finally:
            self.in_flight -= 1
        task_id = request.url.path.rsplit("/", 1)[-1]
        return httpx.Response(200, json={"task_id": task_id, "owner": "u"})


async def test_a_crowd_of_lookups_takes_turns_and_every_one_is_answered() -> None:
    model = _HeldReadModel()
    api = ProgressApi("http://progress", transport=httpx.MockTransport(model), in_flight=4)
    try:
        lookups = [asyncio.create_task(api.task(f"t{n}")) for n in range(200)]
        await wait_until(lambda: model.in_flight == 4, timeout=10, what="the first turns")
        model.release.set()
        answers = await asyncio.gather(*lookups)
        assert [a["task_id"] for a in answers if a] == [f"t{n}" for n in range(200)]
        assert model.most == 4
    finally:
        await api.close()


async def test_a_lookup_that_waits_too_long_for_its_turn_is_unavailable() -> None:
    model = _HeldReadModel()
    api = ProgressApi(
        "http://progress", transport=httpx.MockTransport(model), in_flight=1, queue_timeout_s=0.2
    )
    try:
        first = asyncio.create_task(api.task("t1"))
        await wait_until(lambda: model.in_flight == 1, timeout=10, what="the first lookup")
        with pytest.raises(ProgressUnavailable, match="too many requests waiting"):
            await api.task("t2")
        assert not await api.caught_up()  # no turn either: not known to be caught up
        model.release.set()
        assert (await first) == {"task_id": "t1", "owner": "u"}
    finally:
        await api.close()

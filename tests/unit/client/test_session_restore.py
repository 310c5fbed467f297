"""The SDK's reconnect with `old_client_id` against a scripted gateway (decision 0141): a stream
the gateway restores is kept when it resumes the SDK's position exactly, asked for again when
not, and asked for after the sentinel ping's pong when the gateway listed it and never restored
it; a restored task the SDK no longer follows is unsubscribed. Every update once, in order,
whichever way. The real gateway: tests/integration/gateway/test_sdk_sessions.py."""

from __future__ import annotations

from typing import Any

import pytest

from ytmaker_client import ClientOptions, ProgressClient, Update

from .fake_gateway import FakeGateway, Script, collect, run_log

FAST = ClientOptions(backoff_base=0.05, backoff_cap=0.2, heartbeat_interval=1.0)
LOG = run_log("t1", 10)  # offsets 0, 2, … 18
# The first connection sends 0, 2 and 4, then closes with 1013: the SDK resumes after 4.
DROP = {0: (3, 1013)}
RESUMES = {"task_id": "t1", "offset": 2, "epoch": "E1", "recovered": True}


def offsets(items: list[object]) -> list[int]:
    return [i.offset for i in items if isinstance(i, Update)]


async def follow(script: Script) -> tuple[list[object], Any]:
    async with FakeGateway(script) as gw, ProgressClient(gw.url, "tok", options=FAST) as client:
        items = await collect(await client.subscribe_task("t1"))
        return items, client.tasks


async def test_a_restored_stream_that_resumes_the_position_is_kept() -> None:
    script = Script(LOG, close_after=DROP, restore={1: (["t1"], [RESUMES])})
    items, channel = await follow(script)
    assert offsets(items) == [u["offset"] for u in LOG]  # 4, sent again, dropped
    assert [c for c, _, _ in script.subscribes] == [0]  # nothing asked for after the drop
    assert script.paths[0] == "/api/v1/ws" and script.paths[1] == "/api/v1/ws?old_client_id=c0"
    assert (channel.sessions_restored, channel.streams_restored) == (1, 1)


@pytest.mark.parametrize(
    "change",
    [
        {"epoch": "E0"},
        {"recovered": False},
        {"recovered": "true"},
        {"offset": 6},  # past the SDK's 4: 6 itself would be skipped
        {"offset": None},
        {"offset": "2"},
        {"offset": -1},
    ],
    ids=repr,
)
async def test_a_restored_stream_that_does_not_resume_the_position_is_asked_for_again(
    change: dict[str, Any],
) -> None:
    script = Script(LOG, close_after=DROP, restore={1: (["t1"], [RESUMES | change])})
    items, channel = await follow(script)
    assert offsets(items) == [u["offset"] for u in LOG]
    assert script.subscribes[1:] == [(1, 4, "E1")]  # after what it had, in its epoch
    assert (channel.sessions_restored, channel.streams_restored) == (1, 0)


async def test_a_listed_stream_never_restored_is_asked_for_and_an_unfollowed_one_let_go() -> None:
    """The gateway restores every stream before it reads a message of the client's: the pong
    of the ping sent on `reconnected` comes after each restored `subscribed`."""
    script = Script(LOG, close_after=DROP, restore={1: (["t1", "t9"], [])})
    items, channel = await follow(script)
    assert offsets(items) == [u["offset"] for u in LOG]
    assert script.subscribes[1:] == [(1, 4, "E1")]
    assert (1, "t9") in script.unsubscribes
    assert (channel.sessions_restored, channel.streams_restored) == (1, 0)

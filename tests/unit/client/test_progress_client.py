"""The SDK's live client against a scripted gateway (real websockets on localhost): resume by
offset after a 1013 close and after a heartbeat timeout, `recovered: false` surfaced, refused
tokens and subscriptions, the backoff's limit, callbacks, connection states."""

from __future__ import annotations

import asyncio
import logging

import pytest

from tests.support.wait import wait_until
from ytmaker_client import (
    AuthenticationError,
    ClientOptions,
    ConnectionLost,
    ConnectionState,
    ProgressClient,
    Snapshot,
    StateChange,
    SubscriptionError,
    TaskState,
    Update,
)

from .fake_gateway import FakeGateway, Script, collect, run_log

FAST = ClientOptions(
    backoff_base=0.05,
    backoff_cap=0.2,
    heartbeat_interval=1.0,
    heartbeat_timeout=10.0,  # a busy test machine must not look like a silent link
    refusal_window=1.0,
    retry_delay=0.05,
)
SILENT = ClientOptions(
    backoff_base=0.05, backoff_cap=0.2, heartbeat_interval=0.1, heartbeat_timeout=0.5
)


def offsets(items: list[object]) -> list[int]:
    return [i.offset for i in items if isinstance(i, Update)]


async def test_every_update_once_in_order_across_1013_closes() -> None:
    log = run_log("t1", 12)
    script = Script(log, close_after={0: (4, 1013), 1: (3, 1013)})
    async with FakeGateway(script) as gw, ProgressClient(gw.url, "tok", options=FAST) as client:
        sub = await client.subscribe_task("t1")
        items = await collect(sub)
    assert offsets(items) == [u["offset"] for u in log]
    assert [(c, since) for c, since, _ in script.subscribes] == [(0, -1), (1, 6), (2, 12)]
    assert script.subscribes[1][2] == "E1"  # the epoch travels with the offset
    assert isinstance(items[-1], Update) and items[-1].state.status == "completed"
    assert sub.last_offset == log[-1]["offset"]


async def test_a_pong_echoes_the_timestamp_of_the_ping_it_answers() -> None:
    """The echo names the ping answered, so the gateway resumes a restored session from what
    came before that ping and nothing later (docs/decisions/0118)."""
    script = Script(run_log("t1", 3), ping_after_log=1764876543.123456)
    async with FakeGateway(script) as gw, ProgressClient(gw.url, "tok", options=FAST) as client:
        items = await collect(await client.subscribe_task("t1"))
        await wait_until(lambda: script.pongs, timeout=10)
    assert len(offsets(items)) == 3
    assert script.pongs == [{"action": "pong", "timestamp": 1764876543.123456}]


async def test_a_silent_connection_is_dropped_and_resumed() -> None:
    log = run_log("t1", 8)
    script = Script(log, silent_after={0: 3})
    changes: list[StateChange] = []
    async with FakeGateway(script) as gw:
        client = ProgressClient(gw.url, options=SILENT)
        client.add_state_listener(changes.append)
        await client.connect()
        items = await collect(await client.subscribe_task("t1"))
        await client.close()
    assert offsets(items) == [u["offset"] for u in log]
    assert script.connections >= 2 and script.pings >= 1
    states = [c.state for c in changes]
    assert states[:3] == [
        ConnectionState.CONNECTING,
        ConnectionState.CONNECTED,
        ConnectionState.RECONNECTING,
    ]
    assert "heartbeat" in changes[2].reason and changes[2].attempt == 1
    assert states[-1] is ConnectionState.DISCONNECTED


async def test_recovered_false_reaches_the_caller() -> None:
    log = run_log("t1", 10)
    # The second connection cannot replay from offset 4: snapshot at 10, then the rest.
    script = Script(log, close_after={0: (3, 1013)}, lost_until={1: 10})
    async with FakeGateway(script) as gw, ProgressClient(gw.url, options=FAST) as client:
        items = await collect(await client.subscribe_task("t1"))
    snapshots = [i for i in items if isinstance(i, Snapshot)]
    assert len(snapshots) == 1
    gap = snapshots[0]
    assert gap.recovered is False and gap.missed and gap.requested_since == 4
    assert gap.offset == 10 and gap.state is not None
    assert offsets(items) == [0, 2, 4, 12, 14, 16, 18]


async def test_a_first_subscribe_without_since_starts_from_a_snapshot() -> None:
    log = run_log("t1", 6)
    script = Script(log, lost_until={0: 4})
    async with FakeGateway(script) as gw, ProgressClient(gw.url, options=FAST) as client:
        items = await collect(await client.subscribe_task("t1", since=None))
    assert isinstance(items[0], Snapshot) and not items[0].missed
    assert offsets(items) == [6, 8, 10]


async def test_resume_from_a_saved_offset() -> None:
    log = run_log("t1", 6)
    script = Script(log)
    async with FakeGateway(script) as gw, ProgressClient(gw.url, options=FAST) as client:
        items = await collect(await client.subscribe_task("t1", since=4, epoch="E1"))
    assert offsets(items) == [6, 8, 10]
    assert script.subscribes == [(0, 4, "E1")]


async def test_a_refused_token_is_not_retried() -> None:
    script = Script([], auth_close=True)
    async with FakeGateway(script) as gw:
        client = ProgressClient(gw.url, "bad", options=FAST)
        with pytest.raises(AuthenticationError):
            await client.connect()
        await client.close()
    assert script.connections == 1


async def test_nothing_listening_is_a_clear_error() -> None:
    async with FakeGateway(Script([])) as gw:
        url = gw.url
    client = ProgressClient(url, options=FAST)
    with pytest.raises(ConnectionLost, match="cannot connect"):
        await client.connect()
    await client.close()


async def test_gives_up_after_max_attempts() -> None:
    log = run_log("t1", 6)
    script = Script(log, close_at_greeting={1, 2, 3, 4}, close_after={0: (1, 1011)})
    options = ClientOptions(backoff_base=0.02, backoff_cap=0.05, max_attempts=2)
    changes: list[StateChange] = []
    async with FakeGateway(script) as gw:
        client = ProgressClient(gw.url, options=options)
        client.add_state_listener(changes.append)
        await client.connect()
        sub = await client.subscribe_task("t1")
        with pytest.raises(ConnectionLost, match="gave up after 2 attempts"):
            await collect(sub)
        await client.close()
    reconnecting = [c for c in changes if c.state is ConnectionState.RECONNECTING]
    assert [c.attempt for c in reconnecting] == [1, 2]
    assert all(0.01 <= c.delay <= 0.05 for c in reconnecting)
    assert client.state is ConnectionState.DISCONNECTED


async def test_a_forbidden_subscribe_is_asked_again_then_given_up() -> None:
    log = run_log("t1", 4)
    script = Script(log, refuse={0: 2})
    async with FakeGateway(script) as gw, ProgressClient(gw.url, options=FAST) as client:
        items = await collect(await client.subscribe_task("t1"))
    assert offsets(items) == [0, 2, 4, 6] and len(script.subscribes) == 3

    script = Script(log, refuse={0: 10_000})
    options = ClientOptions(refusal_window=0.3, retry_delay=0.05)
    async with FakeGateway(script) as gw, ProgressClient(gw.url, options=options) as client:
        with pytest.raises(SubscriptionError) as refused:
            await collect(await client.subscribe_task("t1"))
    assert refused.value.code == "forbidden" and refused.value.task_id == "t1"


async def test_callbacks_in_order() -> None:
    log = run_log("t1", 5)
    script = Script(log, close_after={0: (2, 1013)})
    seen: list[tuple[str, int]] = []
    done: list[TaskState] = []

    async def on_status(update: Update) -> None:
        await asyncio.sleep(0)
        seen.append(("status", update.offset))

    async with FakeGateway(script) as gw, ProgressClient(gw.url, options=FAST) as client:
        sub = await client.subscribe_task(
            "t1",
            on_progress=lambda u: seen.append(("progress", u.offset)),
            on_status=on_status,
            on_complete=done.append,
        )
        with pytest.raises(TypeError):
            sub.__aiter__()
        await asyncio.wait_for(sub.wait(), 10)
    progress = [("progress", offset) for offset in (0, 2, 4, 6)]
    assert seen == [*progress, ("status", 8)]
    assert [s.status for s in done] == ["completed"]


async def test_unsubscribe_ends_the_iteration() -> None:
    log = run_log("t1", 3)
    gateway = FakeGateway(Script(log, silent_after={0: 1}))
    async with gateway as gw, ProgressClient(gw.url, options=ClientOptions()) as client:
        sub = await client.subscribe_task("t1")
        first = await anext(aiter(sub))
        await sub.unsubscribe()
        rest = [item async for item in sub]
    assert isinstance(first, Update) and first.offset == 0 and rest == []


async def test_the_token_is_in_no_log_line(caplog: pytest.LogCaptureFixture) -> None:
    """websockets logs every handshake header at DEBUG, `Authorization: Bearer <token>` with
    them: an application that turns on debug logging wrote its users' tokens to its logs."""
    secret = "s3cret-token"
    caplog.set_level(logging.DEBUG)
    script = Script(run_log("t1", 3))
    async with FakeGateway(script) as gw, ProgressClient(gw.url, secret, options=FAST) as client:
        await collect(await client.subscribe_task("t1"))
    client_side = [r for r in caplog.records if r.name != "websockets.server"]  # not the fake's
    logged = "\n".join(r.getMessage() for r in client_side)
    assert "Authorization" in logged  # the handshake was logged ...
    assert secret not in logged  # ... without the token
    assert secret not in repr(client) and secret not in repr(client.rest)

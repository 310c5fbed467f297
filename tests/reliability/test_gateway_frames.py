"""Hostile WebSocket frames against a gateway on the real broker (docs/decisions/0041): hypothesis
writes frames of every kind (any text, binary, any JSON, numbers of thousands of digits or beyond a
double, nesting thousands deep, near-valid messages with a wrong type, an unknown field, a task id
that is not one, somebody else's task) and sends them, one after the other, on one connection. Each
gets its answer (an `error` with a stable code for every frame the protocol refuses) and the
connection stays; nothing about another user's task comes back; only an oversize frame closes
(1009).

Seeded: the seed is printed, and `YTMAKER_FUZZ_SEED=<seed>` repeats a run.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from websockets.asyncio.client import ClientConnection, connect

from tests.integration.gateway.conftest import Cluster, cluster  # noqa: F401 (a fixture)
from tests.support.gateway import make_update
from ytmaker_gateway.rules.protocol import ACTIONS, ProtocolError, parse_client_message
from ytmaker_shared.events import new_event_id

pytestmark = pytest.mark.kafka

SEED = int(os.environ.get("YTMAKER_FUZZ_SEED") or random.randrange(2**32))
FRAMES = 400
ALICE_TASK, BOB_TASK = new_event_id(), new_event_id()
ANSWERS = {
    "error",
    "subscribed",
    "snapshot",
    "unsubscribed",
    "ack",
    "pong",
    "progress",
    "status",
}
CODES = {
    "invalid_frame",
    "invalid_json",
    "invalid_message",
    "unknown_action",
    "missing_field",
    "invalid_field",
    "forbidden",
    "conflict",
    "unavailable",
    "replay_failed",
}

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
)
any_json = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
#: JSON numbers Python's own parser chokes on, or that do not fit a double or 64 bits.
huge_numbers = st.integers(20, 6000).map(lambda n: "9" * n) | st.sampled_from(
    ["1e400", "-1e400", "1e-400", "18446744073709551616", "-9223372036854775809", "1" + "0" * 400]
)
deep = st.integers(100, 5000).map(lambda d: "[" * d + "]" * d) | st.integers(100, 3000).map(
    lambda d: '{"a":' * d + "1" + "}" * d
)
task_ids = st.sampled_from([ALICE_TASK, BOB_TASK, new_event_id(), ALICE_TASK.upper()]) | st.text(
    max_size=80
)
near_valid = st.fixed_dictionaries(
    {"action": st.sampled_from(sorted(ACTIONS)) | st.text(max_size=12)},
    optional={
        "task_id": task_ids | scalars,
        "since": st.integers(-3, 2**70) | scalars,
        "epoch": scalars,
        "reason": st.text(max_size=1200) | scalars,
        "type": st.sampled_from(["ping", "pong"]) | scalars,
        "timestamp": any_json,
        "colour": scalars,
    },
).map(json.dumps)


valid = st.one_of(
    st.builds(
        lambda task, since: {"action": "subscribe", "task_id": task, "since": since},
        st.sampled_from([ALICE_TASK, BOB_TASK, new_event_id()]),
        st.none() | st.integers(-1, 50),
    ),
    st.builds(
        lambda action, task: {"action": action, "task_id": task},
        st.sampled_from(["unsubscribe", "cancel", "pause", "resume"]),
        st.sampled_from([ALICE_TASK, BOB_TASK]),
    ),
    st.sampled_from([{"type": "ping"}, {"action": "pong"}]),
    st.builds(lambda at: {"action": "pong", "timestamp": at}, st.floats(0, 2e9)),
).map(json.dumps)


@st.composite
def with_raw_value(draw: st.DrawFn) -> str:
    """A near-valid message with one field's value replaced by a huge number or deep nesting
    (written as JSON text: Python's own encoder cannot even produce some of them)."""
    fields = {"action": draw(st.sampled_from(["subscribe", "cancel", "unsubscribe", "pong"]))}
    fields["task_id"] = draw(st.sampled_from([ALICE_TASK, BOB_TASK]))
    name = draw(st.sampled_from(["since", "task_id", "reason", "epoch", "timestamp", "extra"]))
    raw = draw(huge_numbers | deep)
    body = json.dumps({k: v for k, v in fields.items() if k != name})
    return body[:-1] + f', "{name}": {raw}}}'


frames = st.one_of(
    valid,
    st.text(max_size=300),
    st.binary(max_size=300),
    any_json.map(json.dumps),
    near_valid,
    with_raw_value(),
    huge_numbers,
    deep,
)


async def _answers(ws: ClientConnection, pongs: int) -> list[dict[str, Any]]:
    """Every message up to the `pongs`-th pong."""
    out: list[dict[str, Any]] = []
    while pongs:
        message = json.loads(await ws.recv())
        out.append(message)
        pongs -= message["type"] == "pong"
    return out


def _refusal(frame: str | bytes) -> str | None:
    """The error code the protocol gives the frame, or None when it is a valid message."""
    try:
        parse_client_message(frame)
    except ProtocolError as exc:
        return exc.code
    return None


def _is_ping(frame: str | bytes) -> bool:
    try:
        return parse_client_message(frame).action == "ping"
    except ProtocolError:
        return False


@dataclass
class _Tally:
    frames: int = 0
    refused: int = 0


async def _check(ws: ClientConnection, frame: str | bytes, tally: _Tally) -> None:
    """Send one frame and a ping; check every answer up to the ping's pong."""
    tally.frames += 1
    await ws.send(frame)
    await ws.send('{"type": "ping"}')
    async with asyncio.timeout(30):
        answers = await _answers(ws, 1 + _is_ping(frame))  # raises if the connection closed
    shown = (tally.frames, frame[:200], answers)
    assert {a["type"] for a in answers} <= ANSWERS, shown
    codes = {a["payload"]["code"] for a in answers if a["type"] == "error"}
    assert codes <= CODES, shown
    # Nothing of somebody else's task: an error, or the echo of an unsubscribe (the same for
    # any id, so it tells nothing).
    assert all(
        a["task_id"] != BOB_TASK or a["type"] in ("error", "unsubscribed") for a in answers
    ), shown
    expected = _refusal(frame)
    if expected is not None:
        tally.refused += 1
        assert expected in codes, shown


def _fuzz(url: str) -> _Tally:
    """Every generated frame, on one connection, from a thread of its own (the gateway keeps
    serving in the test's event loop meanwhile)."""
    loop = asyncio.new_event_loop()
    tally = _Tally()
    ws = loop.run_until_complete(connect(url, max_size=None))
    assert json.loads(loop.run_until_complete(ws.recv()))["type"] == "connected"

    @seed(SEED)
    @settings(
        max_examples=FRAMES,
        phases=[Phase.generate],  # the frames share a connection: no shrinking
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(frame=frames)
    def one(frame: str | bytes) -> None:
        loop.run_until_complete(_check(ws, frame, tally))

    try:
        one()
    finally:
        loop.run_until_complete(ws.close())
        loop.close()
    return tally


# The gateway's own event loop (aiokafka, uvicorn) uses `random` in the main thread while the
# frames are drawn in another: hypothesis notices the global state move, which is harmless here.
@pytest.mark.filterwarnings("ignore:Do not use the `random` module inside strategies")
async def test_hostile_frames_get_answers_and_the_connection_stays(
    cluster: Cluster,  # noqa: F811 (the fixture)
) -> None:
    print(f"fuzz seed {SEED} (YTMAKER_FUZZ_SEED={SEED} repeats it)")
    replica = await cluster.replica(max_messages_per_second=100_000, unknown_task_wait_s=0)
    await cluster.write(make_update(ALICE_TASK, n=0))
    await cluster.write(make_update(BOB_TASK, n=0, owner="bob"))
    tally = await asyncio.to_thread(_fuzz, f"{replica.ws}/api/v1/ws?token={cluster.token()}")
    print(f"{tally.frames} frames on one connection, {tally.refused} refused with an error")
    assert tally.frames >= FRAMES * 0.9
    assert tally.frames // 3 <= tally.refused < tally.frames  # hostile, valid ones mixed in
    async with connect(f"{replica.ws}/api/v1/ws?token={cluster.token('bob')}") as ws:
        assert json.loads(await ws.recv())["type"] == "connected"  # fine for everybody


async def test_only_an_oversize_frame_closes_the_connection(
    cluster: Cluster,  # noqa: F811 (the fixture)
) -> None:
    replica = await cluster.replica(max_frame_bytes=4096)
    async with connect(f"{replica.ws}/api/v1/ws?token={cluster.token()}", max_size=None) as ws:
        await ws.recv()
        await ws.send('{"action": "ping", "pad": "' + "x" * 4000 + '"}')  # just inside
        assert json.loads(await ws.recv())["payload"]["code"] == "invalid_field"
        await ws.send("[" * 5000)
        with pytest.raises(Exception) as closed:
            while True:
                await ws.recv()
        assert getattr(closed.value, "rcvd", None) is not None
        assert closed.value.rcvd.code == 1009  # type: ignore[attr-defined]

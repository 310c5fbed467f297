"""SessionRegistry across replicas (core/sessions.py, decision 0032), against a fake read model."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any, cast

import pytest

from ytmaker_gateway.adapters.progress_api import ProgressApi, ProgressUnavailable
from ytmaker_gateway.core import sessions
from ytmaker_gateway.core.sessions import Session, SessionRegistry


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


class FakeStore:
    """The read model's session endpoints: records by client id; `script` replaces the
    record at each successive lookup (a replica recording the close meanwhile)."""

    def __init__(self) -> None:
        self.records: dict[str, dict[str, Any]] = {}
        self.script: list[dict[str, Any]] = []
        self.saved: list[list[dict[str, Any]]] = []
        self.down = False
        self.gate: asyncio.Event | None = None

    async def sessions(self, *, user: str | None = None, active: bool | None = None) -> Any:
        if self.down:
            raise ProgressUnavailable("down")
        if self.script:
            record = self.script.pop(0)
            self.records[record["client_id"]] = record
        return [r for r in self.records.values() if user is None or r["user"] == user]

    async def save_sessions(self, records: list[dict[str, Any]]) -> None:
        if self.gate is not None:
            await self.gate.wait()
        self.saved.append(records)
        for record in records:
            self.records[record["client_id"]] = record


def _record(
    client_id: str = "c-old",
    user: str = "alice",
    *,
    closed_ago: float | None = 1.0,
    checkpoint_ago: float = 1.0,
    offsets: Any = None,
) -> dict[str, Any]:
    now = time.time()
    offsets = {"t1": 7, "t2": -1} if offsets is None else offsets
    return {
        "client_id": client_id,
        "user": user,
        "connected_at": _iso(now - 100),
        "disconnected_at": None if closed_ago is None else _iso(now - closed_ago),
        "last_active_at": _iso(now - 2),
        "updated_at": _iso(now - checkpoint_ago),
        "subscriptions": sorted(offsets),
        "offsets": offsets,
    }


def _registry(store: FakeStore, *, window_s: float = 300, wait_s: float = 0.3) -> SessionRegistry:
    return SessionRegistry(window_s, cast(ProgressApi, store), restore_wait_s=wait_s)


async def test_a_session_closed_on_another_replica_is_restored_with_its_offsets() -> None:
    store = FakeStore()
    store.records["c-old"] = _record()
    session = await _registry(store).restore("c-old", "alice")
    assert session is not None and session.offsets == {"t1": 7, "t2": -1}


def test_a_task_with_nothing_acknowledged_is_left_out_of_the_records_offsets() -> None:
    """-1 is the whole run (a `since: -1` subscribe); None, nothing acknowledged: the
    record lists the task without an offset, and reads back as None (a snapshot)."""
    session = Session("c-1", "alice", offsets={"t1": 4, "t2": -1, "t3": None})
    record = session.record()
    assert record["subscriptions"] == ["t1", "t2", "t3"]
    assert record["offsets"] == {"t1": 4, "t2": -1}
    back = Session.from_record(record)
    assert back is not None and back.offsets == {"t1": 4, "t2": -1, "t3": None}


@pytest.mark.parametrize(
    ("record", "user"),
    [
        (_record(user="bob"), "alice"),  # someone else's
        (_record(closed_ago=400), "alice"),  # closed before the window
        (_record(offsets={"t1": "seven"}), "alice"),  # unusable
        (_record(offsets={"t1": True}), "alice"),
        (_record(offsets={"t1": -2}), "alice"),
        (_record(offsets={"t1": 7.5}), "alice"),
    ],
    ids=["other-user", "outside-window", "bad-offsets", "bool", "below-minus-one", "float"],
)
async def test_what_may_not_or_cannot_be_restored_is_not(record: dict[str, Any], user: str) -> None:
    store = FakeStore()
    store.records[record["client_id"]] = record
    assert await _registry(store).restore("c-old", user) is None


async def test_an_unknown_id_or_a_read_model_that_is_down_restores_nothing() -> None:
    store = FakeStore()
    registry = _registry(store)
    assert await registry.restore("c-nobody", "alice") is None
    store.down = True
    assert await registry.restore("c-old", "alice") is None


async def test_a_record_still_open_is_waited_for_until_its_replica_records_the_close() -> None:
    store = FakeStore()
    closed = _record(offsets={"t1": 9})
    store.script = [_record(closed_ago=None, offsets={"t1": 5}), closed]
    session = await _registry(store, wait_s=5).restore("c-old", "alice")
    assert session is not None and session.offsets == {"t1": 9}  # the close's, not the checkpoint's


async def test_a_record_never_closed_is_restored_from_a_recent_checkpoint_only() -> None:
    store = FakeStore()
    store.records["c-old"] = _record(closed_ago=None, offsets={"t1": 5})
    started = time.monotonic()
    session = await _registry(store, wait_s=0.3).restore("c-old", "alice")
    assert session is not None and session.offsets == {"t1": 5}
    assert time.monotonic() - started >= 0.3
    store.records["c-old"] = _record(closed_ago=None, checkpoint_ago=400)
    assert await _registry(store, wait_s=0.1).restore("c-old", "alice") is None


async def test_records_of_a_session_are_written_in_order_and_coalesced() -> None:
    store = FakeStore()
    store.gate = asyncio.Event()
    registry = _registry(store)
    session = Session(client_id="c-1", user="alice")
    registry.open(session)  # in flight, held at the gate
    await asyncio.sleep(0)  # let the writer take the first record
    session.offsets = {"t1": 1}
    registry.save(session)
    session.offsets = {"t1": 2}
    registry.close(session)  # replaces the pending checkpoint
    store.gate.set()
    async with asyncio.timeout(5):
        await registry.drain()
    assert [[r["offsets"] for r in batch] for batch in store.saved] == [[{}], [{"t1": 2}]]
    assert store.records["c-1"]["disconnected_at"] is not None


class FakeConnection:
    """A live connection as the registry sees it: its current offsets."""

    def __init__(self, current: dict[str, int | None]) -> None:
        self.current = current

    def offsets(self) -> dict[str, int | None]:
        return dict(self.current)

    def projects(self) -> list[str]:
        return []

    async def subscribe_from_rest(self, task_id: str, since: int | None) -> None:
        raise NotImplementedError

    def unsubscribe(self, task_id: str) -> None:
        raise NotImplementedError


async def test_a_checkpoint_records_only_sessions_whose_offsets_moved() -> None:
    store = FakeStore()
    registry = _registry(store)
    moving, still = Session(client_id="c-1", user="a"), Session(client_id="c-2", user="a")
    current = {"t1": 3}
    moving.connection = FakeConnection(current)
    still.connection = FakeConnection({})
    registry.active = {"c-1": moving, "c-2": still}
    assert await registry.checkpoint() == 1
    assert await registry.checkpoint() == 0
    current["t1"] = 4
    assert await registry.checkpoint() == 1
    async with asyncio.timeout(5):
        await registry.drain()
    assert store.records["c-1"]["offsets"] == {"t1": 4} and "c-2" not in store.records


def test_this_replica_restores_its_own_closed_sessions_within_the_window_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = [1_000.0]
    monkeypatch.setattr(sessions.time, "time", lambda: clock[0])
    registry = SessionRegistry(60)  # no read model: this replica's memory only
    first, second, third = (Session(client_id=f"c-{n}", user="alice") for n in (1, 2, 3))
    for session in (first, second, third):
        registry.open(session)
    registry.close(first)
    clock[0] += 30
    registry.close(second)
    registry.close(third)
    clock[0] += 20
    registry.open(first)
    registry.close(first)  # closed again: it is now the latest, at 1,050
    clock[0] += 15  # the window starts at 1,005: second and third (1,030) are in it

    assert registry.take("c-2", "bob") is None  # someone else's
    assert registry.take("c-2", "alice") is second
    assert registry.take("c-2", "alice") is None  # once
    clock[0] += 30  # the window starts at 1,035: third (1,030) has left it, first has not
    assert registry.take("c-3", "alice") is None
    assert registry.take("c-1", "alice") is first


def test_a_session_closed_before_a_clock_step_back_still_expires(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = [1_000.0]
    monkeypatch.setattr(sessions.time, "time", lambda: clock[0])
    registry = SessionRegistry(60)
    late, early = (
        Session(client_id="c-late", user="alice"),
        Session(client_id="c-early", user="alice"),
    )
    registry.close(late)  # at 1,000
    clock[0] -= 50
    registry.close(early)  # at 950, after `late` in closing order
    clock[0] = 1_015  # the window starts at 955: `early` is out of it, `late` in it
    assert registry.take("c-early", "alice") is None
    assert registry.take("c-late", "alice") is late

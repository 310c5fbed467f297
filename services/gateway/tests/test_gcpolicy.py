"""The garbage collector's schedule (gcpolicy.py, decision 0033)."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator

import pytest

from ytmaker_gateway import gcpolicy


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


@pytest.fixture(autouse=True)
def _unfrozen() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


def _cycle() -> weakref.ref[_Node]:
    a, b = _Node(), _Node()
    a.other, b.other = b, a
    return weakref.ref(a)


def test_survivors_are_frozen_and_a_frozen_cycle_waits_for_the_full_collection() -> None:
    gcpolicy.start_up()
    frozen_at_start = gc.get_freeze_count()
    assert frozen_at_start > 0
    garbage = _cycle()  # unreachable already: the refreeze collects it
    kept = _Node()
    gcpolicy.refreeze()
    assert garbage() is None
    assert gc.get_freeze_count() > frozen_at_start
    assert not any(obj is kept for obj in gc.get_objects())  # out of the collector's reach

    ref = weakref.ref(kept)
    kept.other = kept  # a cycle among frozen objects...
    del kept
    gc.collect()
    assert ref() is not None  # ...outlives ordinary collections
    assert gcpolicy.full_collection() >= 0
    assert ref() is None  # and not the full one
    assert gc.get_freeze_count() > 0


def test_a_young_threshold_is_applied_only_when_asked() -> None:
    before = gc.get_threshold()
    gcpolicy.start_up(0)
    assert gc.get_threshold() == before
    gcpolicy.start_up(5000)
    assert gc.get_threshold() == (5000, before[1], before[2])


async def test_the_schedule_refreezes_collects_fully_and_stops(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[str] = []
    both = asyncio.Event()

    def call(name: str) -> float:
        calls.append(name)
        if {"refreeze", "full"} <= set(calls):
            both.set()
        return 0.0

    monkeypatch.setattr(gcpolicy, "refreeze", lambda: call("refreeze"))
    monkeypatch.setattr(gcpolicy, "full_collection", lambda: call("full"))
    stopping = asyncio.Event()
    task = asyncio.create_task(gcpolicy.run(0.01, 0.05, stopping))
    async with asyncio.timeout(5):
        await both.wait()
    stopping.set()
    async with asyncio.timeout(2):
        await task
    assert calls[0] == "refreeze"

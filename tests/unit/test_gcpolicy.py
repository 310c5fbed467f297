"""The garbage collector's schedule (ytmaker_shared/gcpolicy.py, decisions 0033, 0044, 0106)."""

from __future__ import annotations

import asyncio
import gc
import time
import weakref
from collections.abc import Callable, Iterator

import pytest

from ytmaker_shared import gcpolicy
from ytmaker_shared.settings import ServiceSettings


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
    assert gc.get_threshold()[:2] == before[:2]
    gcpolicy.start_up(5000)
    assert gc.get_threshold()[:2] == (5000, before[1])


async def _run_schedule(
    interval_s: float,
    full_every_s: float,
    *,
    until: asyncio.Event,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Run the schedule until `until` is set (5 s at most), then stop it (2 s at most)."""
    stopping = asyncio.Event()
    task = asyncio.create_task(gcpolicy.run(interval_s, full_every_s, stopping, clock))
    async with asyncio.timeout(5):
        await until.wait()
    stopping.set()
    async with asyncio.timeout(2):
        await task


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

    heap = iter(range(1000, 10**9, 1000))  # a heap that keeps growing
    monkeypatch.setattr(gc, "get_freeze_count", lambda: next(heap))
    monkeypatch.setattr(gcpolicy, "refreeze", lambda: call("refreeze"))
    monkeypatch.setattr(gcpolicy, "full_collection", lambda: call("full"))
    await _run_schedule(0.01, 0.05, until=both)
    assert calls[0] == "refreeze"


def _full_collections() -> int:
    return int(gc.get_stats()[2]["collections"])


def _survivors() -> list[list[int]]:
    """Twice as many tracked objects as the process has, kept: Python's own rule (a quarter of
    the survivors of the last full collection) asks for a full collection on the way."""
    return [[i] for i in range(2 * len(gc.get_objects()) + 100_000)]


def test_full_collections_are_left_to_the_schedule() -> None:
    gc.set_threshold(700, 10, 10)  # Python's
    gc.collect()
    before = _full_collections()
    kept = _survivors()
    assert _full_collections() > before  # Python collected everything by itself
    del kept

    gcpolicy.start_up()
    before = _full_collections()
    kept = _survivors()
    assert _full_collections() == before
    assert len(kept) > 100_000


async def test_scheduled_runs_the_settings_schedule_and_only_when_asked() -> None:
    others = asyncio.all_tasks()  # the session's loop may run other tests' tasks
    off = ServiceSettings(gc_freeze=False)
    threshold = gc.get_threshold()
    async with gcpolicy.scheduled(off):
        assert gc.get_threshold() == threshold
        assert not {t for t in asyncio.all_tasks() - others if t.get_name() == "gc"}

    on = ServiceSettings(gc_freeze=True, gc_threshold=900, gc_freeze_interval_s=0.01)
    async with gcpolicy.scheduled(on):
        assert gc.get_threshold() == (900, threshold[1], gcpolicy.NO_AUTOMATIC_FULL_COLLECTION)
        assert gc.get_freeze_count() > 0
        (schedule,) = {t for t in asyncio.all_tasks() - others if t.get_name() == "gc"}
        assert not schedule.done()
    assert schedule.done() and schedule.exception() is None


def test_a_heap_is_walked_again_only_once_it_has_grown_by_a_quarter() -> None:
    for mark in (1000, 400_000, 8_000_000):
        assert not gcpolicy.full_collection_due(mark, mark)
        assert not gcpolicy.full_collection_due(mark + mark // 5, mark)
        assert gcpolicy.full_collection_due(mark + mark // 4, mark)


async def _schedule_of(heap: list[int], monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What the schedule does in 40 steps, a full collection allowed every 5, while the frozen
    heap is `heap[0]`, then `heap[1]`... one value per step (the last one stays). Its clock
    counts steps, not seconds."""
    calls: list[str] = []
    enough = asyncio.Event()
    sizes = [heap[0]]

    def step(name: str) -> float:
        calls.append(name)
        if len(calls) >= 40:
            enough.set()
        sizes.append(heap[min(len(calls), len(heap) - 1)])
        return 0.0

    monkeypatch.setattr(gc, "get_freeze_count", lambda: sizes[-1])
    monkeypatch.setattr(gcpolicy, "refreeze", lambda: step("refreeze"))
    monkeypatch.setattr(gcpolicy, "full_collection", lambda: step("full"))
    await _run_schedule(0.0001, 5, until=enough, clock=lambda: len(calls))
    return calls


async def test_the_schedule_leaves_a_steady_heap_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    for size in (1000, 400_000, 8_000_000):
        assert "full" not in await _schedule_of([size], monkeypatch)


async def test_a_growing_heap_is_walked_once_a_quarter_bigger(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """From the start, and after each full collection, the next one waits until the frozen
    heap has grown by a quarter (and at least as long as the schedule says)."""
    growing = [400_000] * 10 + [400_000 + 10_000 * n for n in range(1, 11)]  # up to 500,000
    calls = await _schedule_of(growing, monkeypatch)
    assert calls.count("full") == 1  # at 500,000, the new mark
    assert calls.index("full") == 19

"""The garbage collector's schedule (ytmaker_shared/gcpolicy.py, decisions 0033, 0044, 0106,
0112, 0120)."""

from __future__ import annotations

import asyncio
import gc
import itertools
import weakref
from collections.abc import Iterator

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


def test_the_start_up_heap_stays_frozen_and_a_full_collection_reclaims_old_cycles() -> None:
    gcpolicy.start_up()
    frozen_at_start = gc.get_freeze_count()
    assert frozen_at_start > 0
    garbage = _cycle()  # unreachable already: a young collection reclaims it
    gc.collect(1)
    assert garbage() is None

    kept = _Node()
    gc.collect(1)
    gc.collect(1)  # survived twice: in the oldest generation, which young ones never scan
    assert any(obj is kept for obj in gc.get_objects(generation=2))
    ref = weakref.ref(kept)
    kept.other = kept  # a cycle among old objects...
    del kept
    gc.collect(1)
    assert ref() is not None  # ...outlives the young collections
    assert gcpolicy.full_collection() >= 0
    assert ref() is None  # and not the full one
    assert gc.get_freeze_count() == frozen_at_start  # which leaves the start-up heap alone
    assert gcpolicy.heap_size() >= frozen_at_start


def test_a_young_threshold_is_applied_only_when_asked() -> None:
    before = gc.get_threshold()
    gcpolicy.start_up(0)
    assert gc.get_threshold()[:2] == before[:2]
    gcpolicy.start_up(5000)
    assert gc.get_threshold()[:2] == (5000, before[1])


async def _schedule_of(sizes: list[int], *, checks: int, full_every: int = 5) -> list[str]:
    """What the schedule does, the heap measured every `full_every` ticks, while the heap is
    `sizes[0]` the first time it is measured, then `sizes[1]`... one value each time (the last
    one stays), until it has been measured `checks` times. Its clock counts ticks: one each
    time it is read."""
    ticks = itertools.count()
    asked: list[int] = []
    calls: list[str] = []
    enough = asyncio.Event()

    def size() -> int:
        value = sizes[min(len(asked), len(sizes) - 1)]
        asked.append(value)
        calls.append(f"size {value}")
        if len(asked) >= checks:
            enough.set()
        return value

    def full() -> float:
        calls.append("full")
        return 0.0

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(gcpolicy, "full_collection", full)
        stopping = asyncio.Event()
        task = asyncio.create_task(
            gcpolicy.run(0.0001, full_every, stopping, lambda: next(ticks), size)
        )
        async with asyncio.timeout(5):
            await enough.wait()
        stopping.set()
        async with asyncio.timeout(2):
            await task
    return calls


async def test_the_schedule_collects_when_due_and_stops() -> None:
    calls = await _schedule_of([1000, 2000], checks=3)
    assert calls[:3] == ["size 1000", "size 2000", "full"]  # grown by half: due


async def test_the_working_set_taken_in_the_first_period_is_not_walked() -> None:
    """A process that grows fourfold in its first seconds (clients connecting, caches filling)
    and then holds steady is never walked: what it took is live."""
    now = 0.0
    measured: list[float] = []
    collections: list[float] = []

    def size() -> int:
        measured.append(now)
        return 100_000 if now < 1 else 400_000

    def full() -> float:
        collections.append(now)
        return 0.0

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(gcpolicy, "full_collection", full)
        stopping = asyncio.Event()
        task = asyncio.create_task(gcpolicy.run(0.0001, 5, stopping, lambda: now, size))
        await asyncio.sleep(0)  # the schedule starts at 0, the heap at its start size
        async with asyncio.timeout(5):
            while len(measured) < 4:
                now += 1  # the fake clock: a second every fifth of a millisecond
                await asyncio.sleep(0.0002)
        stopping.set()
        async with asyncio.timeout(2):
            await task
    assert collections == []  # never walked
    assert measured[0] >= 5  # first measured a period after its start, at its working set


async def test_the_schedule_never_collects_with_full_every_0() -> None:
    asked: list[int] = []

    def size() -> int:
        asked.append(1)
        return 1

    stopping = asyncio.Event()
    task = asyncio.create_task(gcpolicy.run(0.0001, 0, stopping, size=size))
    await asyncio.sleep(0.05)
    stopping.set()
    async with asyncio.timeout(2):
        await task
    assert asked == []  # not even measured


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


async def test_the_schedule_leaves_a_steady_heap_alone() -> None:
    for size in (1000, 400_000, 8_000_000):
        assert "full" not in await _schedule_of([size], checks=6)


async def test_a_growing_heap_is_walked_once_a_quarter_bigger() -> None:
    """From the first measure, and after each full collection, the next one waits until the
    heap has grown by a quarter; the heap is asked again only when a full collection may be
    due."""
    calls = await _schedule_of([400_000, 450_000, 490_000, 500_000, 500_000, 560_000], checks=7)
    assert (
        calls
        == [
            "size 400000",  # the mark: the working set of its first period
            "size 450000",  # not due
            "size 490000",  # not due
            "size 500000",  # a quarter more: due
            "full",
            "size 500000",  # the new mark
            "size 560000",  # not due
            "size 560000",
        ][: len(calls)]
    )
    assert calls.count("full") == 1

"""The fan-out core without a broker: exact replay, the replay→live switch, snapshots,
bounded queues. The log is `FakeLog`; Kafka itself is covered by
tests/integration/gateway."""

from __future__ import annotations

import asyncio
import gc
import json
from typing import Any

import pytest

from tests.support.gateway import PROJECT, FakeLog, make_update
from tests.support.wait import wait_until
from ytmaker_gateway import metrics
from ytmaker_gateway.fanout.cache import ENTRY_OVERHEAD, UpdateCache
from ytmaker_gateway.fanout.client_queue import ClientQueue
from ytmaker_gateway.fanout.hub import Hub
from ytmaker_gateway.fanout.streams import Streams
from ytmaker_gateway.rules.position import StreamPosition
from ytmaker_gateway.settings import GatewaySettings
from ytmaker_shared.metrics import RECORDS_SKIPPED
from ytmaker_shared.progress import TaskStatus


def _hub(**settings: Any) -> Hub:
    return Hub(GatewaySettings(**settings))


def _messages(queue: ClientQueue) -> list[dict[str, Any]]:
    return [json.loads(text) for text in queue.queued()]


def _offsets(queue: ClientQueue, task_id: str) -> list[int]:
    return [
        m["offset"]
        for m in _messages(queue)
        if m["type"] in ("progress", "status", "error") and m["task_id"] == task_id
    ]


def _queue(size: int = 10_000) -> ClientQueue:
    async def send(_: str) -> None:
        return None

    return ClientQueue(send, maxsize=size)


def _fill(log: FakeLog, task_ids: list[str], rounds: int) -> dict[str, list[int]]:
    """Interleave `rounds` updates of each task; the offsets of each task's updates."""
    written: dict[str, list[int]] = {t: [] for t in task_ids}
    for n in range(rounds):
        for task_id in task_ids:
            written[task_id].append(log.append(make_update(task_id, n=n, progress=n)))
    return written


TASKS = ["task-a", "task-b", "task-c", "task-d", "task-e"]


@pytest.mark.parametrize("cached", [True, False], ids=["from-cache", "from-log"])
async def test_subscribe_since_every_offset_gives_exactly_the_rest(cached: bool) -> None:
    hub = _hub(cache_updates_per_task=1000 if cached else 0)
    log = FakeLog(hub, partitions=2)
    written = _fill(log, TASKS, rounds=6)
    streams = Streams(hub, log, queue_limit=1000)
    target = "task-c"
    partition = hub.partition_of(target)
    partition_end = log.records[partition][-1][0] + 1
    for since in range(-1, partition_end):
        queue = _queue()
        sub = await streams.subscribe(target, queue, StreamPosition(since), state=None)
        assert _offsets(queue, target) == [o for o in written[target] if o > since], since
        first = _messages(queue)[0]
        assert first["type"] == "subscribed" and first["payload"]["recovered"] is True
        hub.unregister(sub)
    assert (log.reads == 0) is cached


async def test_updates_written_during_the_replay_arrive_once_and_in_order() -> None:
    hub = _hub(cache_updates_per_task=0)
    log = FakeLog(hub, partitions=1)
    _fill(log, ["t1", "t2"], rounds=5)
    real_read = log.page

    async def read_while_live_goes_on(*args: Any) -> list[Any]:
        for n in range(5, 9):  # live updates land while the replay is being read
            log.append(make_update("t1", n=n))
            await asyncio.sleep(0)
        return await real_read(*args)

    log.page = read_while_live_goes_on  # type: ignore[method-assign]
    queue = _queue()
    await Streams(hub, log, 1000).subscribe("t1", queue, StreamPosition(2), state=None)
    log.append(make_update("t1", n=9))
    every_t1 = [o for o, k, _, _ in log.records[0] if k == b"t1"]
    assert _offsets(queue, "t1") == [o for o in every_t1 if o > 2]


async def test_a_lagging_hub_switches_to_live_without_gap() -> None:
    hub = _hub(cache_updates_per_task=0)
    log = FakeLog(hub, partitions=1)
    _fill(log, ["t1"], rounds=3)
    for n in range(3, 6):
        log.append(make_update("t1", n=n), deliver=False)  # written, the hub has not seen them
    queue = _queue()
    await Streams(hub, log, 1000).subscribe("t1", queue, StreamPosition(0), state=None)
    assert _offsets(queue, "t1") == [1, 2]  # replay stops at the hub's position
    log.deliver_pending()
    assert _offsets(queue, "t1") == [1, 2, 3, 4, 5]


async def test_an_offset_no_longer_held_gives_recovered_false_and_a_snapshot() -> None:
    hub = _hub(cache_updates_per_task=0)
    log = FakeLog(hub, partitions=1)
    written = _fill(log, ["t1"], rounds=6)
    log.log_start[0] = 3  # retention removed offsets 0..2
    state = {"task_id": "t1", "status": "running", "progress": 4.0, "offset": 4, "owner": "alice"}
    queue = _queue()
    await Streams(hub, log, 1000).subscribe("t1", queue, StreamPosition(0), state=state)
    messages = _messages(queue)
    assert messages[0]["type"] == "subscribed"
    assert messages[0]["payload"]["recovered"] is False and messages[0]["offset"] == 4
    assert messages[1]["type"] == "snapshot" and messages[1]["payload"]["progress"] == 4.0
    assert _offsets(queue, "t1") == [o for o in written["t1"] if o > 4]


@pytest.mark.parametrize("case", ["future-offset", "other-epoch", "since-null"])
async def test_other_reasons_for_a_snapshot(case: str) -> None:
    hub = _hub(cache_updates_per_task=0)
    hub.epoch = "E1"
    log = FakeLog(hub, partitions=1)
    _fill(log, ["t1"], rounds=4)
    state = {"task_id": "t1", "status": "running", "offset": 2, "owner": "alice"}
    since, epoch = {
        "future-offset": (99, None),
        "other-epoch": (0, "E0"),
        "since-null": (None, None),
    }[case]
    queue = _queue()
    await Streams(hub, log, 1000).subscribe("t1", queue, StreamPosition(since, epoch), state=state)
    messages = _messages(queue)
    assert messages[0]["payload"] == {
        "task_id": "t1",
        "offset": 2,
        "epoch": "E1",
        "recovered": False,
        "restored": False,
    }
    assert messages[1]["type"] == "snapshot"
    assert _offsets(queue, "t1") == [3]


async def test_live_updates_reach_every_subscriber_and_a_slow_one_only_hurts_itself() -> None:
    hub = _hub()
    log = FakeLog(hub, partitions=1)
    streams = Streams(hub, log, queue_limit=1000)
    fast, slow = _queue(size=100), _queue(size=5)
    await streams.subscribe("t1", fast, StreamPosition(-1), state=None)
    await streams.subscribe("t1", slow, StreamPosition(-1), state=None)
    for n in range(20):
        log.append(make_update("t1", n=n))
    assert _offsets(fast, "t1") == list(range(20))
    assert slow.overflowed and not fast.overflowed


async def test_the_writer_sends_in_order_and_counts_what_it_sent() -> None:
    sent: list[str] = []

    async def send(text: str) -> None:
        sent.append(text)

    queue = ClientQueue(send, maxsize=10, batch=3)
    writer = asyncio.create_task(queue.run())
    for n in range(7):
        queue.push(f"m{n}")
    await wait_until(lambda: len(sent) == 7, timeout=5)
    assert sent == [f"m{n}" for n in range(7)] and queue.sent == 7
    queue.close()
    await writer


async def test_held_messages_count_as_sent_only_once_the_next_one_is_sent() -> None:
    held: list[str] = []
    sent: list[str] = []

    async def send_held(text: str) -> None:
        if text == "m4":
            raise ConnectionError("gone")
        held.append(text)

    async def send(text: str) -> None:
        sent.append(text)

    queue = ClientQueue(send, maxsize=10, batch=3, send_held=send_held)
    for n in range(7):
        queue.push(f"m{n}")
    writer = asyncio.create_task(queue.run())
    with pytest.raises(ConnectionError):
        await writer
    # batch 1: m0 and m1 held, written with m2; batch 2: m3 held, then the socket went
    assert (held, sent) == (["m0", "m1", "m3"], ["m2"])
    assert queue.sent == 3
    assert queue.queued() == ["m5", "m6"]  # never handed to the server: left for a flush


class _Socket:
    """`write_now` of a socket whose buffer is full while `full` is set; what it wrote."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.full = False

    def write_now(self, texts: list[str]) -> bool:
        if self.full:
            return False
        self.calls.append(texts)
        return True

    @property
    def written(self) -> list[str]:
        return [text for call in self.calls for text in call]


async def test_what_one_step_pushes_is_written_after_it_in_batches_without_the_writer() -> None:
    socket = _Socket()

    async def send(text: str) -> None:
        raise AssertionError(f"{text} went through the writer")

    queue = ClientQueue(send, maxsize=10, batch=4, write_now=socket.write_now)
    writer = asyncio.create_task(queue.run())
    for n in range(6):
        queue.push(f"m{n}")
    assert socket.calls == [] and len(queue) == 6  # nothing while the pusher's step runs
    await wait_until(lambda: queue.sent == 6, timeout=5, what="the direct writes")
    assert socket.calls == [["m0", "m1", "m2", "m3"], ["m4", "m5"]]
    assert len(queue) == 0
    queue.close()
    await writer


async def test_what_the_socket_cannot_take_now_goes_through_the_writer_in_order() -> None:
    socket = _Socket()
    through_writer: list[str] = []
    gate = asyncio.Event()

    async def send(text: str) -> None:
        await gate.wait()  # a socket the client drains slowly
        through_writer.append(text)

    queue = ClientQueue(send, maxsize=20, batch=3, write_now=socket.write_now)
    writer = asyncio.create_task(queue.run())
    queue.push("m0")
    await wait_until(lambda: queue.sent == 1, timeout=5, what="the first write")
    socket.full = True
    for n in range(1, 4):
        queue.push(f"m{n}")
    await wait_until(lambda: len(queue) == 0, timeout=5, what="the writer's batch")
    socket.full = False  # room again, but the writer has m1..m3 in hand: m4 must wait
    queue.push("m4")
    for _ in range(3):  # a few turns of the loop: a direct write would have happened by now
        await asyncio.sleep(0)
    assert socket.written == ["m0"] and queue.queued() == ["m4"]
    gate.set()
    await wait_until(lambda: queue.sent == 5, timeout=5, what="every message")
    assert socket.written == ["m0"] and through_writer == ["m1", "m2", "m3", "m4"]
    queue.close()
    await writer


async def test_a_project_stream_gets_initial_then_its_tasks_updates() -> None:
    hub = _hub()
    log = FakeLog(hub, partitions=2)
    log.append(make_update("t1", project_id="p1", n=0))
    queue = _queue()
    initial = {"task_id": "t1", "offset": 0, "status": "running"}
    await Streams(hub, log, 1000).watch_project("p1", queue, initial)
    log.append(make_update("t1", project_id="p1", n=1))
    log.append(make_update("t9", project_id="p2", n=0))
    log.append(make_update("t2", project_id="p1", n=0, status=TaskStatus.QUEUED))
    types = [(m["type"], m["task_id"]) for m in _messages(queue)]
    assert types == [("initial", "t1"), ("progress", "t1"), ("progress", "t2")]


def _counted(metric: Any, **labels: str) -> float:
    return sum(
        s.value
        for m in metric.collect()
        for s in m.samples
        if s.name.endswith("_total") and labels.items() <= s.labels.items()
    )


async def test_an_update_outside_its_tasks_partition_is_skipped_and_counted() -> None:
    """A task's updates are one stream, in its partition, ordered and resumed by that
    partition's offsets (decision 0123). One of task T written to another partition (a hostile
    writer) at a higher offset was sent live to T's subscribers and project feeds, which then
    dropped T's real updates at lower offsets, and became T's newest update in the cache."""
    hub = _hub()
    log = FakeLog(hub, partitions=4)
    victim = "task-victim"
    home = hub.partition_of(victim)
    wrong = (home + 1) % 4
    neighbour = next(t for t in (f"task-{i}" for i in range(1000)) if hub.partition_of(t) == wrong)
    streams = Streams(hub, log, queue_limit=1000)
    queue, feed = _queue(), _queue()
    await streams.subscribe(victim, queue, StreamPosition(-1), state=None)
    await streams.watch_project(PROJECT, feed, None)
    skipped = _counted(RECORDS_SKIPPED, service="gateway", reason="wrong_partition")
    bad = _counted(metrics.BAD_UPDATES, reader="live", reason="wrong_partition")

    real = [log.append(make_update(victim, n=0))]
    for n in range(5):
        log.append(make_update(neighbour, n=n))
    done = make_update(victim, n=99, progress=100, status=TaskStatus.COMPLETED)
    hostile = log.append_raw(victim, done.model_dump_json().encode(), partition=wrong)
    real.append(log.append(make_update(victim, n=1)))
    assert hostile > real[-1] and hub.positions[wrong] == hostile + 1  # read past, not stuck

    assert _offsets(queue, victim) == real
    assert _offsets(feed, victim) == real
    newest = hub.cache.newest(victim)
    assert newest is not None and (newest.partition, newest.offset) == (home, real[-1])
    assert hub.status_after(victim, None, None) == "running"
    assert _counted(RECORDS_SKIPPED, service="gateway", reason="wrong_partition") == skipped + 1
    assert _counted(metrics.BAD_UPDATES, reader="live", reason="wrong_partition") == bad + 1
    # a later subscriber, replayed from the cache, gets the task's own updates only
    again = _queue()
    await streams.subscribe(victim, again, StreamPosition(-1), state=None)
    assert _offsets(again, victim) == real


async def test_an_update_keyed_by_another_task_is_skipped_live_as_in_a_replay() -> None:
    """A replay selects a task's records by key; the fan-out did not see keys, so a record in
    U's partition keyed T holding U's update (a hostile writer) was live for U's subscribers
    and the newest update in U's cache, and absent from U's replay."""
    hub = _hub()
    log = FakeLog(hub, partitions=1)
    streams = Streams(hub, log, queue_limit=1000)
    queue, feed = _queue(), _queue()
    await streams.subscribe("task-u", queue, StreamPosition(-1), state=None)
    await streams.watch_project(PROJECT, feed, None)
    bad = _counted(metrics.BAD_UPDATES, reader="live", reason="key_mismatch")

    real = [log.append(make_update("task-u", n=0))]
    forged = make_update("task-u", n=9, progress=100, status=TaskStatus.COMPLETED)
    log.append_raw("task-u", forged.model_dump_json().encode(), key=b"task-t")
    log.append_raw("task-u", forged.model_dump_json().encode(), key=b"")
    real.append(log.append(make_update("task-u", n=1)))

    assert _offsets(queue, "task-u") == _offsets(feed, "task-u") == real
    assert hub.status_after("task-u", None, None) == "running"
    assert _counted(metrics.BAD_UPDATES, reader="live", reason="key_mismatch") == bad + 2
    replayed = await log.page("task-u", 0, 0, real[-1] + 1, None, 100)
    assert [d.offset for d in replayed.items] == real


def test_the_cache_only_answers_what_it_provably_holds() -> None:
    hub = _hub()
    log = FakeLog(hub, partitions=1)
    cache = UpdateCache(per_task=2, tasks=2)
    hub.cache = cache
    for n in range(4):
        log.append(make_update("t1", n=n))  # offsets 0..3, the cache keeps 2 and 3
    assert cache.read("t1", 0, 2, 4, 0) is not None
    assert cache.read("t1", 0, 1, 4, 0) is None
    log.append(make_update("t2", n=0))  # 4
    log.append(make_update("t3", n=0))  # 5: t1 is dropped from the cache
    assert cache.read("t1", 0, 2, 6, 0) is None
    assert cache.read("never-seen", 0, 4, 6, 0) == []
    assert cache.read("never-seen", 0, 3, 6, 0) is None


def test_a_task_back_in_the_cache_after_being_dropped_is_not_complete_from_the_start() -> None:
    hub = _hub()
    log = FakeLog(hub, partitions=1)
    cache = hub.cache = UpdateCache(per_task=10, tasks=1)
    log.append(make_update("t1", n=0))  # 0
    log.append(make_update("t2", n=0))  # 1: t1 is dropped
    log.append(make_update("t1", n=1))  # 2: t1 is back, without its update at 0
    assert cache.read("t1", 0, 0, 3, 0) is None
    assert [d.offset for d in cache.read("t1", 0, 2, 3, 0) or []] == [2]


def test_a_quiet_task_dropped_from_the_cache_needs_no_kafka_read_from_its_last_update() -> None:
    hub = _hub()
    log = FakeLog(hub, partitions=1)
    cache = hub.cache = UpdateCache(per_task=10, tasks=1)
    log.append(make_update("t1", n=0))  # 0
    log.append(make_update("t1", n=1))  # 1
    for n in range(5):
        log.append(make_update(f"busy-{n}", n=0))  # 2..6: t1 dropped, then each busy task
    # t1 had no update after 1 (it would be back in the cache): from 2 on it is known empty,
    # although the partition's floor (after the busy tasks dropped) is 6
    assert cache.read("t1", 0, 2, 7, 0) == []
    assert cache.read("t1", 0, 1, 7, 0) is None  # its update at 1 is gone from memory
    assert cache.read("busy-0", 0, 3, 7, 0) == []
    assert cache.read("never-seen", 0, 2, 7, 0) is None  # only the floor (6) is known
    log.append(make_update("t1", n=2))  # 7: back, complete from 2 on
    assert [d.offset for d in cache.read("t1", 0, 2, 8, 0) or []] == [7]


def test_the_cache_keeps_to_its_byte_budget() -> None:
    hub = _hub()
    log = FakeLog(hub, partitions=1)
    one = len(update_message_of("t1")) + ENTRY_OVERHEAD
    cache = hub.cache = UpdateCache(per_task=1000, tasks=1000, max_bytes=int(one * 10.5))
    for n in range(5):
        log.append(make_update("t1", n=n))  # offsets 0..4
    for n in range(5):
        log.append(make_update("t2", n=n))  # offsets 5..9: the budget holds ten
    log.append(make_update("t2", n=5))  # 10: t1, updated longest ago, goes whole
    assert cache.size <= int(one * 10.5)
    assert cache.read("t1", 0, 0, 11, 0) is None
    assert [d.offset for d in cache.read("t2", 0, 5, 11, 0) or []] == [5, 6, 7, 8, 9, 10]
    for n in range(6, 20):
        log.append(make_update("t2", n=n))  # alone over the budget: its oldest go
    assert cache.size <= int(one * 10.5)
    kept = cache.read("t2", 0, 0, 100, 0)
    assert kept is None  # no longer complete from the start...
    assert len(cache.read("t2", 0, 15, 100, 0) or []) == 10  # ...but the newest ten are there


def update_message_of(task_id: str) -> str:
    from ytmaker_gateway.rules.protocol import update_message

    return update_message(make_update(task_id, n=0), 0, None)


def test_the_garbage_collector_does_not_walk_the_cached_updates() -> None:
    """A full collection walks every tracked object: the cache's half a million updates must
    not be among them (decision 0106)."""
    hub = _hub()
    log = FakeLog(hub, partitions=1)
    cache = hub.cache = UpdateCache(per_task=100_000, tasks=10)
    log.append(make_update("t1", n=0))
    gc.collect()
    before = len(gc.get_objects())
    for n in range(1, 2001):
        log.append(make_update("t1", n=n))
    gc.collect()
    assert len(cache.read("t1", 0, 0, 10_000, 0) or []) == 2001
    assert len(gc.get_objects()) - before < 200

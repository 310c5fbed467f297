"""The figures only ytmaker has: tasks made through its pipeline topics and awaited through its
public API, resume by offset after 1k/10k missed updates, the fan-out of one gateway process,
the idle stack, and a read model filled with history.

Everything is awaited through the gateway's public REST API (docs/protocol.md), which answers from
the read side: whatever the process layout, a task is "there" when a client would see it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import sys
import time
from collections import Counter
from typing import Any

import httpx

from bench.harness.clients import Client, count_losses
from bench.harness.phases import Target, all_processes
from bench.harness.procs import cpu_between, rss_mb, snapshot
from bench.harness.report import Window
from bench.harness.stacks import YtmakerStack
from bench.harness.wire import bearer
from ytmaker_progress.eta import EtaEstimated
from ytmaker_shared.events import new_event_id

#: The event type of the updates that the ETA projector's estimates cause.
ETA_ESTIMATED = EtaEstimated.model_fields["type"].default


class Api:
    """The gateway's REST API as one user."""

    def __init__(self, stack: YtmakerStack, user: str) -> None:
        self.http = httpx.AsyncClient(
            base_url=f"{stack.base_url}/api/v1",
            headers={"authorization": f"Bearer {stack.token(user)}"},
            timeout=30,
        )

    async def close(self) -> None:
        await self.http.aclose()

    async def state(self, task_id: str) -> dict[str, Any] | None:
        answer = await self.http.get(f"/progress/{task_id}")
        if answer.status_code in (403, 503):  # not folded yet (or catching up)
            return None
        answer.raise_for_status()
        state: dict[str, Any] = answer.json()
        return state

    async def stats(self) -> dict[str, Any] | None:
        """The user's task counts; None while the read side does not answer in time (503,
        e.g. busy storing a history)."""
        try:
            answer = await self.http.get("/progress/stats")
        except httpx.TimeoutException:
            return None
        if answer.status_code == 503:
            return None
        answer.raise_for_status()
        stats: dict[str, Any] = answer.json()
        return stats

    async def wait_states(
        self, tasks: list[str], ready: Any, timeout: float, what: str
    ) -> dict[str, dict[str, Any]]:
        """Poll every task's state until `ready(state)` holds for all; returns the states."""
        deadline = time.monotonic() + timeout
        done: dict[str, dict[str, Any]] = {}
        gate = asyncio.Semaphore(20)

        async def check(task_id: str) -> None:
            async with gate:
                state = await self.state(task_id)
            if state is not None and ready(state):
                done[task_id] = state

        while True:
            await asyncio.gather(*(check(t) for t in tasks if t not in done))
            if len(done) == len(tasks):
                return done
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what}: {len(tasks) - len(done)} of {len(tasks)} not ready")
            await asyncio.sleep(0.2)


async def prepare(target: Target, owner: str, tasks: list[str]) -> None:
    """Make the tasks (requested, script stage started) and wait until a client can see them."""
    await target.producer.call("prepare", owner=owner, tasks=tasks, timeout=300)
    if isinstance(target.stack, YtmakerStack):
        api = Api(target.stack, owner)
        try:
            await api.wait_states(tasks, lambda s: s.get("stage") == "script", 300, "prepare")
        finally:
            await api.close()


async def _burst_and_wait(target: Target, api: Api, task_id: str, count: int) -> dict[str, Any]:
    burst = await target.producer.call("burst", task=task_id, count=count, timeout=600)
    await api.wait_states(
        [task_id], lambda s: (s.get("completed_steps") or 0) >= burst["last"], 600, "burst"
    )
    return burst


async def resume(target: Target, sizes: list[int], repeats: int) -> list[dict[str, Any]]:
    """For each size: a client reads its task, goes away, `size` updates are made and folded,
    and the client comes back with its last offset. Time from the reconnect to the last
    missed update; what it got must be exactly the missed updates. A resume the gateway
    refuses for 15 s is reported as failed, with the gateway's answers."""
    assert isinstance(target.stack, YtmakerStack)
    owner = "bench-resume"
    api = Api(target.stack, owner)
    results = []
    try:
        for size in sizes:
            tries = [await _resume_once(target, api, owner, size, n) for n in range(repeats)]
            done = [t for t in tries if "failed" not in t]
            results.append({
                "missed": size,
                "resume_s": [t["seconds"] for t in done],
                "resume_s_median": _median([t["seconds"] for t in done]),
                "first_update_s_median": _median([t["first"] for t in done]),
                "lost": sum(t["lost"] for t in done),
                "repeated": sum(t["repeated"] for t in done),
                "failed": [t["failed"] for t in tries if "failed" in t],
            })  # fmt: skip
    finally:
        await api.close()
    return results


async def _resume_once(target: Target, api: Api, owner: str, size: int, n: int) -> dict[str, Any]:
    assert isinstance(target.stack, YtmakerStack)
    wire = target.stack.wire(owner)
    task_id = new_event_id()  # ids as the system issues them (UUIDv7)
    await prepare(target, owner, [task_id])
    reader = Client(wire, task_id, Window())
    await reader.open()
    reader.start()
    await _burst_and_wait(target, api, task_id, 1)
    await _until(lambda: len(reader.seqs) >= 1, 30)
    await reader.close()
    burst = await _burst_and_wait(target, api, task_id, size)
    back = Client(wire, task_id, Window())
    back.last_offset = reader.last_offset
    started = time.time()
    try:
        await back.open(timeout=15)
        back.start()
        await _until(lambda: bool(back.seqs) and back.seqs[-1] >= burst["last"], 120)
        elapsed = time.time() - started
    except Exception as exc:  # reported as a failed resume, with what the gateway said
        answers = Counter(back.open_failures + back_closes(back)) or Counter([repr(exc)[:120]])
        return {"failed": ", ".join(f"{n}× {answer}" for answer, n in answers.items())}
    finally:
        await back.close()
    losses = count_losses([back], {task_id: [burst["first"], burst["last"]]})
    earlier = sum(1 for s in back.seqs if s < burst["first"])  # seen before it went away
    return {
        "seconds": round(elapsed, 3),
        "first": round(_first_arrival(back, started), 3),
        "lost": losses["lost"],
        "repeated": losses["repeated"] + earlier,
    }


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 3) if values else None


def back_closes(client: Client) -> list[str]:
    return [f"closed {code} after subscribing" for code in client.unexpected_closes]


def _first_arrival(client: Client, started: float) -> float:
    return client.first_arrival - started if client.first_arrival else float("nan")


async def _until(condition: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the client did not get the updates it waited for")
        await asyncio.sleep(0.005)


async def fanout(
    targets: list[Target],
    target: Target,
    tasks: int,
    clients: int,
    updates: int,
    processes: int = 2,
) -> dict[str, Any]:
    """S2-shaped: `updates` updates of each of `tasks` tasks already in the log; `clients`
    connected clients subscribe at once from the start (`since: -1`); updates delivered per
    second until every client has its task's last update. The clients run in `processes`
    processes of their own (`fanout_clients`), so that one client process does not bound
    what the gateway delivers."""
    assert isinstance(target.stack, YtmakerStack)
    owner = "bench-fanout"
    ids = [new_event_id() for _ in range(tasks)]
    await prepare(target, owner, ids)
    api = Api(target.stack, owner)
    try:
        await asyncio.gather(
            *(target.producer.call("burst", task=t, count=updates, timeout=600) for t in ids)
        )
        states = await api.wait_states(
            ids, lambda s: (s.get("completed_steps") or 0) >= updates, 600, "fan-out fill"
        )
    finally:
        await api.close()
    url = f"{target.stack.base_url.replace('http', 'ws', 1)}/api/v1/ws"
    headers = bearer(target.stack.token(owner))
    plan = [[n, ids[n % tasks], states[ids[n % tasks]]["offset"]] for n in range(clients)]
    workers = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.harness.fanout_clients",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        for _ in range(processes)
    ]
    try:
        for i, worker in enumerate(workers):
            await _tell(worker, {"url": url, "headers": headers, "clients": plan[i::processes]})
        for worker in workers:
            await _answer(worker)  # ready: every connection open
        watched = all_processes(targets) | {
            f"loadgen/fanout-clients-{i + 1}": w.pid for i, w in enumerate(workers)
        }
        before = snapshot(watched)
        started = time.time()
        for worker in workers:
            await _tell(worker, "go")
        results = await asyncio.wait_for(asyncio.gather(*map(_answer, workers)), 600)
        seconds = time.time() - started
        after = snapshot(watched)  # every worker still running: each one's CPU is counted
        for worker in workers:
            await _tell(worker, "quit")
    finally:
        for worker in workers:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(worker.wait(), 10)
            if worker.returncode is None:
                worker.kill()
                await worker.wait()
    complete = {n for r in results for n in r["complete"]}
    why = {int(n): code for r in results for n, code in r["refused"].items()}
    why |= {int(n): f"closed {code}" for r in results for n, code in r["closes"].items()}
    delivered = sum(count for r in results for count in r["counts"].values())
    return {
        "tasks": tasks,
        "clients": clients,
        "client_processes": processes,
        "updates_per_task": updates,
        "delivered": delivered,
        "seconds": round(seconds, 2),
        "updates_per_s": round(delivered / seconds),
        "incomplete_clients": clients - len(complete),
        "incomplete_why": dict(
            Counter(why[n] for n in range(clients) if n not in complete and n in why)
        ),
        "cpu": cpu_between(before, after),
    }


async def _tell(worker: asyncio.subprocess.Process, value: object) -> None:
    assert worker.stdin is not None
    worker.stdin.write((value if isinstance(value, str) else json.dumps(value)).encode() + b"\n")
    await worker.stdin.drain()


async def _answer(worker: asyncio.subprocess.Process) -> dict[str, Any]:
    assert worker.stdout is not None
    line = await worker.stdout.readline()
    if not line:
        raise RuntimeError(f"a fan-out client process ended (exit {await worker.wait()})")
    answer: dict[str, Any] = json.loads(line)
    return answer


async def idle(
    targets: list[Target], target: Target, seconds: float, settle: float
) -> dict[str, Any]:
    """CPU of the ytmaker stack with no clients and no events, measured `settle` seconds after
    the last event (right after a phase, the fold still commits and the gateway still closes
    its clients' connections)."""
    processes = all_processes(targets)
    await asyncio.sleep(settle)
    before = snapshot(processes)
    await asyncio.sleep(seconds)
    cpu = cpu_between(before, snapshot(processes))
    mine = {k: v for k, v in cpu["processes"].items() if k.startswith("ytmaker/")}  # type: ignore[attr-defined]
    services = sum(v for k, v in mine.items() if k != "ytmaker/kafka")
    return {
        "seconds": seconds,
        "settle_seconds": settle,
        "services_pct_of_one_core": round(services, 2),
        "broker_pct_of_one_core": mine.get("ytmaker/kafka"),
        "processes": mine,
        "machine_busy_pct": cpu["machine_busy_pct"],
    }


async def fill_history(target: Target, tasks: int, updates: int) -> dict[str, Any]:
    """`tasks` finished runs of `updates` updates each, produced into the pipeline topics and
    folded by ytmaker; returns once the read model counts them all as completed, with the
    updates of some of them (`history.COUNTED_TASKS`) counted by cause."""
    assert isinstance(target.stack, YtmakerStack)
    owner = "bench-history"
    rss_before = _rss(target)
    started = time.monotonic()
    filled = await target.producer.call(
        "fill", owner=owner, tasks=tasks, updates_per_task=updates, timeout=3600
    )
    api = Api(target.stack, owner)
    try:
        deadline = time.monotonic() + 3600
        while ((await api.stats()) or {}).get("completed_tasks", 0) < tasks:
            if time.monotonic() > deadline:
                raise TimeoutError("the history was not folded within an hour")
            await asyncio.sleep(2)
        folded_s = time.monotonic() - started
        counted = {task: await _history(api, task) for task in filled["counted_tasks"]}
    finally:
        await api.close()
    causes = {task: _causes(kept) for task, kept in counted.items()}
    # a task whose events did not make one update each is a fault to explain: keep its updates
    faulty = {
        task: counted[task]
        for task, its in causes.items()
        if its["of_its_events"] != updates or its["repeated_events"]
    }
    return ({"faulty_task_histories": faulty} if faulty else {}) | {
        "tasks": tasks,
        "updates_per_task": updates,
        "events_produced": filled["events"],
        "produce_s": filled["seconds"],
        "folded_and_stored_s": round(folded_s, 1),
        "last_task_updates_in_read_model": len(counted[filled["last_task"]]),
        "updates_by_cause": {
            "tasks": len(causes),
            **{key: sum(its[key] for its in causes.values()) for key in CAUSES},
        },
        "how": "pipeline events produced into the stage topics and folded by ytmaker itself",
        "rss_mb_before": rss_before,
        "rss_mb_after": _rss(target),
    }


async def _history(api: Api, task_id: str) -> list[dict[str, Any]]:
    """The task's updates, as the read model keeps them."""
    url = f"/progress/{task_id}/history/db"
    for _ in range(300):  # 503 while the read side is too busy to answer in time
        answer = await api.http.get(url, params={"limit": 10_000})
        if answer.status_code != 503:
            break
        await asyncio.sleep(2)
    answer.raise_for_status()
    return [item["update"] for item in answer.json()["items"]]


#: What `_causes` counts in a task's updates.
CAUSES = ("of_its_events", "repeated_events", "of_eta_estimates")


def _causes(updates: list[dict[str, Any]]) -> dict[str, int]:
    """A finished task's updates by what caused them: each of its events makes one, and an
    estimate of the ETA projector makes one more when it lands while the task still runs (its
    estimate is a change that clients see, decision 0085)."""
    events = Counter(u["event_id"] for u in updates if u["event_type"] != ETA_ESTIMATED)
    of_events = events.total()
    return {
        "of_its_events": of_events,
        "repeated_events": sum(1 for n in events.values() if n > 1),
        "of_eta_estimates": len(updates) - of_events,
    }


def _rss(target: Target) -> dict[str, float | None]:
    return {label: rss_mb(pid) for label, pid in target.stack.processes().items()}

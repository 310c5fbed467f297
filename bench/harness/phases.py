"""One measured phase: clients connect to a target, its publisher streams at a steady rate, the
latencies of what was produced inside the window and the CPU over the window are taken.

Every target runs the same phase the same way; only the wire (how a client subscribes and
reads) and the publisher differ. The harness runs the phases of all targets alternately.
"""

from __future__ import annotations

import asyncio
import gc
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bench.harness.clients import Client, close_all, count_losses, open_all
from bench.harness.loadgen import ProducerProcess, TapProcess
from bench.harness.procs import cpu_between, load_average, snapshot
from bench.harness.report import Window
from bench.harness.stacks import Stack

DRAIN_S = 5.0  # nothing more arrived for this long: the rest is lost
DRAIN_MAX_S = 120.0
START_DELAY_S = 0.5


@dataclass(frozen=True)
class Scenario:
    name: str
    clients: int
    tasks: int
    rate: float  # events per second, over all tasks

    @property
    def deliveries_per_s(self) -> float:
        return self.rate * self.clients / self.tasks


@dataclass
class Target:
    stack: Stack
    producer: ProducerProcess
    tap: TapProcess | None = None  # ytmaker: when updates become readable in the log
    tasks: dict[str, list[str]] = field(default_factory=dict)  # task set name → task ids
    owners: dict[str, str] = field(default_factory=dict)  # task set name → owner

    @property
    def name(self) -> str:
        return self.stack.name


def all_processes(targets: list[Target]) -> dict[str, int]:
    """Every process the run consists of: each target's, each producer, and this one (the
    clients), labelled `<target>/<process>` and `loadgen/<process>`."""
    found = {"loadgen/clients": os.getpid()}
    for target in targets:
        for label, pid in target.stack.processes().items():
            found[f"{target.name}/{label}"] = pid
        if target.producer.pid is not None:
            found[f"loadgen/producer-{target.name}"] = target.producer.pid
        if target.tap is not None and target.tap.pid is not None:
            found["loadgen/tap"] = target.tap.pid
    return found


async def run_phase(
    targets: list[Target],
    target: Target,
    scenario: Scenario,
    seconds: float,
    settle: float,
    *,
    away: tuple[float, float] | None = None,
) -> dict[str, Any]:
    """Connect `scenario.clients` clients to `target`, stream for `settle + seconds`, measure
    the last `seconds`. `away=(fraction, seconds)`: that share of the clients disconnects
    for that long in the middle of the window and reconnects (resuming where it can)."""
    tasks = target.tasks[scenario.name]
    window = Window()
    wire = target.stack.wire(target.owners[scenario.name])
    clients = [Client(wire, tasks[i % len(tasks)], window) for i in range(scenario.clients)]
    connect_s = await open_all(clients)
    processes = all_processes(targets)  # scans /proc: never inside the window
    gc.collect()
    gc.freeze()  # the clients' objects never reach the collector during the window
    stream: asyncio.Task[dict[str, Any]] | None = None
    try:
        start_at = time.time() + START_DELAY_S
        window.start, window.end = start_at + settle, start_at + settle + seconds
        if target.tap is not None:
            await target.tap.call("window", start=window.start, end=window.end)
        stream = asyncio.create_task(
            target.producer.call(
                "stream",
                tasks=tasks,
                rate=scenario.rate,
                seconds=settle + seconds,
                start_at=start_at,
                timeout=settle + seconds + 120,
            )
        )
        await _sleep_until(window.start)
        before, load_before = snapshot(processes), load_average()
        away_clients: list[Client] = []
        if away is not None:
            fraction, away_s = away
            step = max(1, round(1 / fraction))
            away_clients = clients[::step]
            await _sleep_until(window.start + (seconds - away_s) / 2)
            await asyncio.gather(*(c.away(away_s) for c in away_clients))
        await _sleep_until(window.end)
        after, load_after = snapshot(processes), load_average()
        produced = await stream
        await _drain(clients, produced["ranges"])
        in_log = await target.tap.call("report") if target.tap is not None else None
    finally:
        if stream is not None:
            stream.cancel()  # the phase was stopped: no one waits for the producer's answer
        await close_all(clients)
        gc.unfreeze()
    closes = Counter(str(code) for c in clients for code in c.unexpected_closes)
    result: dict[str, Any] = {
        "target": target.name,
        "scenario": scenario.name,
        "clients": scenario.clients,
        "tasks": len(tasks),
        "rate": scenario.rate,
        "seconds": seconds,
        # when the window was, to match a stall to what the services logged then
        "window_utc": [_utc(window.start), _utc(window.end)],
        "connect_s": round(connect_s, 1),
        "latency_ms": window.summary(),
        "expected_in_window": round(scenario.deliveries_per_s * seconds),
        "losses": count_losses(clients, produced["ranges"]),
        "unexpected_closes": dict(closes),
        "producer": {k: produced[k] for k in ("sent", "errors", "behind_ms")},
        "cpu": cpu_between(before, after),
        "load_average": [round(load_before, 2), round(load_after, 2)],
    }
    if in_log is not None:
        result["in_input_latency_ms"] = in_log["input"]  # event → readable in its topic
        result["in_log_latency_ms"] = in_log["log"]  # event → readable in progress.updates
    if away is not None:
        result["away"] = {
            "clients": len(away_clients),
            "seconds": away[1],
            **count_losses(away_clients, produced["ranges"]),
        }
    return result


def _utc(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds")


async def _sleep_until(at: float) -> None:
    await asyncio.sleep(max(0.0, at - time.time()))


async def _drain(clients: list[Client], ranges: dict[str, list[int]]) -> None:
    """Wait until every client has its task's last update, or nothing arrived for DRAIN_S
    (what is missing then is lost, not late), or DRAIN_MAX_S passed."""
    give_up = time.monotonic() + DRAIN_MAX_S
    received, quiet_since = -1, time.monotonic()
    while time.monotonic() < give_up:
        if all(c.seqs and max(c.seqs[-5:]) >= ranges.get(c.task_id, [0, 0])[1] for c in clients):
            return
        now_received = sum(len(c.seqs) for c in clients)
        if now_received != received:
            received, quiet_since = now_received, time.monotonic()
        elif time.monotonic() - quiet_since > DRAIN_S:
            return
        await asyncio.sleep(0.1)

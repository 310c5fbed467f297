"""Delivery latency and CPU of ytmaker beside the two first designs, in one run (issue 11).

    make bench                                   # full size (about 30 minutes)
    make bench BENCH_ARGS="--tiny"               # a tiny size, to see that it works
    .venv/bin/python -m bench.delivery --history  # with 10,000 finished tasks in the read model
    .venv/bin/python -m bench.delivery --plot bench/results/<run>.json --plots-dir docs/performance

Targets: ytmaker, started by `scripts/run_local.py` (the code of `make run`) with every service
but the stage workers; the Redis Pub/Sub baseline (bench/baselines/redis_pubsub.py, its own
redis-server) as its design is written, with a project row written per update (`redis`), and
without that database (`redis-nodb`, decision 0114); the python-socketio rooms baseline
(bench/baselines/socketio_rooms.py).

After a warm-up of each target, `--rounds` rounds; each round measures S1 (clients on as many
tasks) and S2 (the same clients on a tenth of the tasks) for every target in turn (the order
rotates per round). Then a 2-s disconnect of a tenth of the clients mid-stream for each target,
and for ytmaker: the idle stack's CPU, resume after 100 to 10k missed updates, and the fan-out
of one gateway process (`--tap` also splits ytmaker's latency at its topic and the log).
Tables are printed; every figure goes to `--out/<time>.json`, the plots to `--plots-dir`
(default: next to the JSON). docs/performance.md explains each figure.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import signal
import sys
import time
from collections.abc import Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.harness import plots
from bench.harness.loadgen import ProducerProcess, TapProcess
from bench.harness.phases import Scenario, Target, run_phase
from bench.harness.procs import machine_info
from bench.harness.report import (
    cpu_ratio_line,
    disconnect_table,
    hops_table,
    process_table,
    resume_table,
    rounds_table,
    summarize,
    summary_table,
)
from bench.harness.stacks import make_stack, new_workdir, prune_workdir
from bench.harness.ytmaker_extras import fanout, fill_history, idle, prepare, resume
from ytmaker_shared.events import new_event_id

ROOT = Path(__file__).resolve().parents[1]
TARGETS = ("ytmaker", "redis", "redis-nodb", "socketio")
TINY = {
    "clients": 20, "s1_tasks": 20, "s2_tasks": 2, "rate": 100.0, "seconds": 1.0,
    "settle": 0.5, "warmup": 1.0, "rounds": 1, "disconnect_seconds": 2.0, "away": 1.0,
    "away_fraction": 0.25, "resume_sizes": "20,100", "resume_repeats": 1, "fanout_tasks": 2,
    "fanout_clients": 20, "fanout_updates": 50, "idle_seconds": 1.0, "idle_settle": 0.0,
    "history_tasks": 20,
}  # fmt: skip


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench.delivery", description=__doc__.split("\n")[0])
    add = p.add_argument
    add("--tiny", action="store_true", help="a tiny size (seconds per target, for tests)")
    add("--targets", default=",".join(TARGETS), help="comma-separated, of " + ", ".join(TARGETS))
    add("--clients", type=int, default=1000, help="WebSocket clients in S1 and S2")
    add("--s1-tasks", type=int, default=1000, help="tasks in S1 (one client each)")
    add("--s2-tasks", type=int, default=100, help="tasks in S2 (clients / tasks each)")
    add("--rate", type=float, default=1000.0, help="events per second, over all tasks")
    add("--rounds", type=int, default=3)
    add("--scenarios", default="S1,S2", help="which of S1, S2 the rounds run")
    add("--seconds", type=float, default=20.0, help="measured per round, scenario and target")
    add("--settle", type=float, default=2.0, help="streamed before each measured window")
    add("--warmup", type=float, default=75.0, help="S1 per target before the rounds")
    add("--disconnect-seconds", type=float, default=20.0, help="the disconnect test's window")
    add("--away", type=float, default=2.0, help="how long a client is away (s)")
    add("--away-fraction", type=float, default=0.1, help="share of the clients that go away")
    add("--resume-sizes", default="100,500,1000,10000", help="missed updates, comma-separated")
    add("--resume-repeats", type=int, default=3)
    add("--fanout-tasks", type=int, default=100)
    add("--fanout-clients", type=int, default=1000)
    add("--fanout-updates", type=int, default=500, help="updates per task in the log")
    add("--fanout-processes", type=int, default=2, help="processes the fan-out's clients run in")
    add("--idle-seconds", type=float, default=20.0)
    add(
        "--idle-settle",
        type=float,
        default=30.0,
        help="quiet seconds before the idle stack is measured (the fold finishes its last "
        "transactions, the gateway lets its clients go)",
    )
    add("--history", action="store_true", help="fill the read model before the rounds")
    add("--history-tasks", type=int, default=10_000)
    add("--history-updates", type=int, default=100, help="updates per finished task")
    add(
        "--tap",
        action="store_true",
        help="split ytmaker's latency at the log (one more "
        "reader of progress.updates: it costs the broker CPU, so it is off by default)",
    )
    add("--ytmaker-services", help="services run_local starts (default: all but the stages)")
    add(
        "--kafka-users",
        action="store_true",
        help="ytmaker's broker signs every client in over TLS, as the manifests' (SCRAM-SHA-512)",
    )
    add("--skip", default="", help="parts to leave out: disconnect,idle,resume,fanout")
    add("--out", type=Path, default=ROOT / "bench" / "results", help="where the JSON goes")
    add("--plots-dir", type=Path, help="where the PNGs go (default: <out>/<run>/)")
    add("--plot", type=Path, help="only draw the plots of this results JSON")
    args = p.parse_args(argv)
    if args.tiny:  # the tiny sizes, under what the command line gives explicitly
        p.set_defaults(**TINY)
        args = p.parse_args(argv)
    args.targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    unknown = set(args.targets) - set(TARGETS)
    if unknown:
        p.error(f"unknown targets {sorted(unknown)}; known: {', '.join(TARGETS)}")
    args.skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    args.scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    if not args.scenarios or set(args.scenarios) - {"S1", "S2"}:
        p.error("--scenarios: a comma-separated list of S1, S2")
    args.resume_sizes = [int(x) for x in str(args.resume_sizes).split(",") if x]
    if args.clients % args.s2_tasks or args.clients < args.s1_tasks:
        p.error("--clients must be a multiple of --s2-tasks and at least --s1-tasks")
    return args


def say(text: str) -> None:
    print(text, flush=True)


class Run:
    """The results of a run, written to `path` after every step (a failed step is recorded as
    `{"error": ...}` and the run goes on)."""

    def __init__(self, results: dict[str, Any], path: Path) -> None:
        self.results = results
        self.path = path

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(self.results, indent=1))

    async def step(self, key: str, work: Coroutine[Any, Any, Any]) -> Any:
        try:
            value = await work
        except Exception as exc:
            value = {"error": repr(exc)[:500]}
            say(f"WARNING: {key} failed: {exc!r:.300}")
        if isinstance(self.results.get(key), list):
            self.results[key].append(value)
        else:
            self.results[key] = value
        self.save()
        return value


async def run(args: argparse.Namespace, path: Path) -> dict[str, Any]:
    started = datetime.now(UTC)
    work = new_workdir()
    services = args.ytmaker_services.split(",") if args.ytmaker_services else None
    s1 = Scenario("S1", args.clients, args.s1_tasks, args.rate)
    s2 = Scenario("S2", args.clients, args.s2_tasks, args.rate)
    results: dict[str, Any] = {
        "meta": {"started": started.isoformat(), "machine": machine_info(), "work": str(work)},
        "config": {k: sorted(v) if isinstance(v, set) else v for k, v in vars(args).items()
                   if k not in ("out", "plots_dir", "plot")},
        "rounds": [],
        "disconnect": [],
    }  # fmt: skip
    record = Run(results, path)
    targets: list[Target] = []
    # A SIGTERM (a timeout, `kill`) stops the stacks as Ctrl-C does: their processes run in
    # sessions of their own, and left running they would load every later measurement.
    main_task = asyncio.current_task()
    assert main_task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)
    try:
        for name in args.targets:
            stack = make_stack(name, work, services, kafka_users=args.kafka_users)
            say(f"starting {name} ...")
            await stack.start()
            producer = ProducerProcess(name, stack.producer_env(), work / f"producer-{name}.log")
            targets.append(Target(stack, producer))
            await producer.start()
            if name == "ytmaker" and args.tap:
                targets[-1].tap = TapProcess(name, stack.producer_env(), work / "tap.log")
                await targets[-1].tap.start()
            for scenario in (s1, s2):
                ids = [new_event_id() for _ in range(scenario.tasks)]  # issued-id shaped: UUIDv7
                owner = f"bench-{scenario.name.lower()}"
                targets[-1].tasks[scenario.name], targets[-1].owners[scenario.name] = ids, owner
                await prepare(targets[-1], owner, ids)
        ytmaker = next((t for t in targets if t.name == "ytmaker"), None)
        if ytmaker is not None:
            results["meta"]["ytmaker_services"] = ytmaker.stack.services  # type: ignore[attr-defined]
            results["meta"]["ytmaker_processes"] = ytmaker.stack.processes()
        if args.history and ytmaker is not None:
            say(f"filling the history: {args.history_tasks} tasks × {args.history_updates} ...")
            await record.step(
                "history", fill_history(ytmaker, args.history_tasks, args.history_updates)
            )
            say(json.dumps(results["history"]))
        for target in targets:
            say(f"warm-up: {target.name}")
            await run_phase(targets, target, s1, args.warmup, 0.0)
        if ytmaker is not None and "idle" not in args.skip:
            idling = idle(targets, ytmaker, args.idle_seconds, args.idle_settle)
            await record.step("idle", idling)
            say(f"idle ytmaker: {results['idle']}")
        for n in range(1, args.rounds + 1):
            for scenario in (s for s in (s1, s2) if s.name in args.scenarios):
                order = targets[n - 1 :] + targets[: n - 1]  # rotates per round
                for target in order:
                    phase = await record.step(
                        "rounds", run_phase(targets, target, scenario, args.seconds, args.settle)
                    )
                    phase.update(round=n, target=target.name, scenario=scenario.name)
                    record.save()
                    if "error" not in phase:
                        say(rounds_table([phase]).splitlines()[-1])
        if "disconnect" not in args.skip:
            for target in targets:
                phase = await record.step("disconnect", run_phase(
                    targets, target, s1, args.disconnect_seconds, args.settle,
                    away=(args.away_fraction, args.away),
                ))  # fmt: skip
                phase.update(target=target.name)
                say(f"disconnect {target.name}: {phase.get('away', phase)}")
        if ytmaker is not None and "resume" not in args.skip:
            await record.step("resume", resume(ytmaker, args.resume_sizes, args.resume_repeats))
        if ytmaker is not None and "fanout" not in args.skip:
            await record.step("fanout", fanout(
                targets, ytmaker, args.fanout_tasks, args.fanout_clients, args.fanout_updates,
                args.fanout_processes,
            ))  # fmt: skip
        if ytmaker is not None:
            results["meta"]["ytmaker_restarts"] = ytmaker.stack.restarts  # type: ignore[attr-defined]
    finally:
        for target in reversed(targets):
            with contextlib.suppress(Exception):
                await target.producer.stop()
            if target.tap is not None:
                with contextlib.suppress(Exception):
                    await target.tap.stop()
            with contextlib.suppress(Exception):
                await target.stack.stop()
        prune_workdir(work)  # the logs stay, for what went wrong
        say(f"logs of every process: {work}")
    results["summary"] = summarize([p for p in results["rounds"] if "error" not in p])
    results["meta"]["seconds"] = round((datetime.now(UTC) - started).total_seconds())
    results["meta"]["complete"] = True
    record.save()
    return results


def print_tables(results: dict[str, Any]) -> None:
    rounds = [p for p in results["rounds"] if "error" not in p]
    say("\n## Rounds\n\n" + rounds_table(rounds))
    say("\n## Summary (median of the rounds)\n\n" + summary_table(results["summary"]))
    for baseline in ("redis", "redis-nodb"):
        if ratio := cpu_ratio_line(results["summary"], baseline=baseline):
            say("\n" + ratio)
    if any("in_log_latency_ms" in p for p in rounds):
        say("\n## ytmaker: event → its topic → log → client (ms)\n\n" + hops_table(rounds))
    for scenario in ("S1", "S2"):
        say(f"\n## CPU per process, {scenario}\n\n" + process_table(rounds, scenario))
    disconnect = [p for p in results["disconnect"] if "error" not in p]
    if disconnect:
        say("\n## 2-s disconnect\n\n" + disconnect_table(disconnect))
    if isinstance(results.get("resume"), list):
        say("\n## ytmaker resume by offset\n\n" + resume_table(results["resume"]))
    failed = [p for p in results["rounds"] + results["disconnect"] if "error" in p]
    for phase in failed + [results[k] for k in ("resume",) if isinstance(results.get(k), dict)]:
        say(f"\nFAILED: {phase}")
    for key in ("fanout", "idle", "history"):
        if results.get(key):
            say(f"\n## ytmaker {key}\n\n{json.dumps(results[key], indent=1)}")
    if results["meta"].get("ytmaker_restarts"):
        say(f"\nWARNING: ytmaker services restarted: {results['meta']['ytmaker_restarts']}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.plot is not None:
        results = json.loads(args.plot.read_text())
        for path in plots.draw(results, args.plots_dir or args.plot.with_suffix("")):
            say(f"plot: {path}")
        return 0
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # a socket per client
    import uvloop

    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    path = args.out / f"{stamp}{'-tiny' if args.tiny else ''}.json"
    say(f"results go to {path} (written after every step)")
    try:
        results = uvloop.run(run(args, path))
    except asyncio.CancelledError:
        say(f"stopped by SIGTERM, every stack with it; what was measured is in {path}")
        return 143
    print_tables(results)
    for png in plots.draw(results, args.plots_dir or args.out / path.stem):
        say(f"plot: {png}")
    say(f"\nresults: {path}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    os.chdir(ROOT)
    raise SystemExit(main())

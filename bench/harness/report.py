"""Figures out of the raw measurements: percentiles, per-target summaries, the printed tables.

Percentiles are nearest-rank over every delivery measured in a round (not averages of
per-client figures). CPU is in % of one core per process; `machine` is in % of all cores.
"""

from __future__ import annotations

import math
import os
import statistics
from array import array
from collections.abc import Iterable, Sequence
from typing import Any

PERCENTILES = (50, 90, 99)


def percentile(ordered: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


class Window:
    """Latencies of what was produced in [start, end), in seconds, with when each was produced:
    the summary adds the worst latency of each second of the window, which tells a tail made
    of a few stalls (a handful of bad seconds, at some cadence) from one spread evenly."""

    def __init__(self, start: float = 0.0, end: float = 0.0) -> None:
        self.start, self.end = start, end
        self.latencies = array("d")
        self.produced = array("d")

    def record(self, produced: float, received: float) -> None:
        if self.start <= produced < self.end:
            self.latencies.append(received - produced)
            self.produced.append(produced)

    def summary(self) -> dict[str, Any]:
        worst = [0.0] * max(0, math.ceil(self.end - self.start))
        for produced, latency in zip(self.produced, self.latencies, strict=True):
            second = int(produced - self.start)
            worst[second] = max(worst[second], latency)
        return {
            **latency_summary(self.latencies),
            "worst_by_second": [round(1000 * w, 1) for w in worst],
        }


def latency_summary(latencies: Iterable[float]) -> dict[str, float | int | None]:
    """p50/p90/p99/max/mean in ms and the count; None when nothing was measured (nothing
    produced in the window arrived before the phase ended)."""
    ordered = sorted(latencies)
    if not ordered:
        return {"count": 0, "p50": None, "p90": None, "p99": None, "max": None, "mean": None}
    summary: dict[str, float | int | None] = {"count": len(ordered)}
    for p in PERCENTILES:
        summary[f"p{p}"] = round(1000 * percentile(ordered, p), 2)
    summary["max"] = round(1000 * ordered[-1], 2)
    summary["mean"] = round(1000 * statistics.fmean(ordered), 2)
    return summary


def is_loadgen_of(label: str, target: str) -> bool:
    """The load generator's processes for `target`: the clients, its producer, ytmaker's tap."""
    return label in ("loadgen/clients", f"loadgen/producer-{target}") or (
        label == "loadgen/tap" and target == "ytmaker"
    )


def cpu_groups(cpu: dict[str, Any], target: str) -> dict[str, float]:
    """A phase's CPU by group: the measured target's processes, the load generator (the clients
    and the target's producer), the other targets (idle meanwhile, with their producers), the
    cores' time the hypervisor gave to other machines (steal) and everything else on this one
    (other users)."""
    processes: dict[str, float] = cpu["processes"]
    groups = {"target": 0.0, "loadgen": 0.0, "other targets": 0.0}
    for label, pct in processes.items():
        if label.split("/", 1)[0] == target:
            groups["target"] += pct
        elif is_loadgen_of(label, target):
            groups["loadgen"] += pct
        else:
            groups["other targets"] += pct
    machine_cores = cpu["machine_busy_pct"] * (os.cpu_count() or 1)
    groups["steal"] = cpu.get("steal_pct_of_one_core", 0.0)  # absent before 2 December
    groups["rest of machine"] = max(0.0, machine_cores - sum(groups.values()))
    return {k: round(v, 1) for k, v in groups.items()}


def summarize(rounds: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """target → scenario → medians over the rounds (and the spread of p99)."""
    out: dict[str, dict[str, Any]] = {}
    for phase in rounds:
        out.setdefault(phase["target"], {}).setdefault(phase["scenario"], []).append(phase)
    summary: dict[str, dict[str, Any]] = {}
    for target, scenarios in out.items():
        summary[target] = {}
        for scenario, phases in scenarios.items():
            lat = [p["latency_ms"] for p in phases if p["latency_ms"]["count"]]
            groups = [cpu_groups(p["cpu"], target) for p in phases]
            summary[target][scenario] = {
                "rounds": len(phases),
                "rounds_without_delivery": len(phases) - len(lat),
                **{
                    f"{k}_median": round(statistics.median(x[k] for x in lat), 2) if lat else None
                    for k in ("p50", "p90", "p99", "max")
                },
                "p99_rounds": [p["latency_ms"]["p99"] for p in phases],
                "machine_busy_pct_median": round(
                    statistics.median(p["cpu"]["machine_busy_pct"] for p in phases), 1
                ),
                "target_cpu_pct_median": round(statistics.median(g["target"] for g in groups), 1),
                "loadgen_cpu_pct_median": round(statistics.median(g["loadgen"] for g in groups), 1),
                "steal_pct_median": round(statistics.median(g["steal"] for g in groups), 1),
                "lost": sum(p["losses"]["lost"] for p in phases),
                "repeated": sum(p["losses"]["repeated"] for p in phases),
            }
    return summary


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    text = [["-" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in text)) if text else len(h) for i, h in
              enumerate(headers)]  # fmt: skip
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |"
    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    body = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in text
    ]
    return "\n".join([line, rule, *body])


def rounds_table(rounds: list[dict[str, Any]]) -> str:
    """One row per phase. `missing`: updates of the phase never received (nothing more came
    for 5 s, or 2 minutes passed after the last was produced)."""
    rows = []
    for p in rounds:
        lat, groups = p["latency_ms"], cpu_groups(p["cpu"], p["target"])
        rows.append([
            p["target"], p["scenario"], p.get("round", "-"),
            lat["p50"], lat["p90"], lat["p99"], lat["max"],
            f"{lat['count']}/{p['expected_in_window']}", p["losses"]["lost"],
            p["cpu"]["machine_busy_pct"], groups["target"], groups["loadgen"],
            groups["rest of machine"], groups["steal"],
            "/".join(str(x) for x in p["load_average"]),
        ])  # fmt: skip
    return _table(
        ["target", "scen.", "round", "p50 ms", "p90 ms", "p99 ms", "max ms", "measured/exp.",
         "missing", "machine %", "target %core", "loadgen %core", "others %core", "steal %core",
         "load"],
        rows,
    )  # fmt: skip


def summary_table(summary: dict[str, dict[str, Any]]) -> str:
    rows = []
    for target, scenarios in summary.items():
        for scenario, s in sorted(scenarios.items()):
            rows.append([
                target, scenario, s["p50_median"], s["p99_median"],
                ", ".join("none" if x is None else f"{x:g}" for x in s["p99_rounds"]),
                s["max_median"],
                s["machine_busy_pct_median"], s["target_cpu_pct_median"],
                s["loadgen_cpu_pct_median"], s["steal_pct_median"], s["lost"], s["repeated"],
            ])  # fmt: skip
    return _table(
        ["target", "scen.", "p50 ms (median)", "p99 ms (median)", "p99 per round", "max ms",
         "machine %", "target %core", "loadgen %core", "steal %core", "missing", "repeated"],
        rows,
    )  # fmt: skip


BASELINES = {"redis": "the Redis design's", "redis-nodb": "the Redis design's without its database"}


def cpu_ratio_line(
    summary: dict[str, dict[str, Any]], scenario: str = "S1", baseline: str = "redis"
) -> str | None:
    """Issue 11's CPU target (ytmaker at S1 ≤ 1.5× the Redis design's) read two ways: the
    benchmark's own processes (target and load generator, medians of the rounds), which steal
    and other users do not touch, and the machine as measured. `baseline`: `redis`, the design
    as written, or `redis-nodb`, the design without its database (decision 0114). None without
    both targets."""
    ours, theirs = summary.get("ytmaker", {}).get(scenario), summary.get(baseline, {}).get(scenario)
    if not ours or not theirs:
        return None
    own = [s["target_cpu_pct_median"] + s["loadgen_cpu_pct_median"] for s in (ours, theirs)]
    machine = [s["machine_busy_pct_median"] for s in (ours, theirs)]
    if not own[1] or not machine[1]:
        return None
    return (
        f"ytmaker's CPU at {scenario} against {BASELINES.get(baseline, baseline)}: own processes "
        f"(target and load generator) {own[0]:.1f} against {own[1]:.1f} % of a core, "
        f"{own[0] / own[1]:.2f}x; the machine as measured (steal included) {machine[0]:.1f} "
        f"against {machine[1]:.1f} %, {machine[0] / machine[1]:.2f}x"
    )


def process_table(rounds: list[dict[str, Any]], scenario: str) -> str:
    """Median % of one core and write system calls a second of each process while each target
    ran `scenario` (results written before writes were counted show "-")."""
    per: dict[str, dict[str, list[tuple[float, int | None]]]] = {}
    for p in rounds:
        if p["scenario"] != scenario:
            continue
        writes = p["cpu"].get("writes_per_s", {})
        for label, pct in p["cpu"]["processes"].items():
            if label.split("/", 1)[0] == p["target"] or is_loadgen_of(label, p["target"]):
                per.setdefault(p["target"], {}).setdefault(label, []).append(
                    (pct, writes.get(label))
                )
    rows = []
    for target, labels in per.items():
        for label, values in sorted(labels.items()):
            calls = [w for _, w in values if w is not None]
            rows.append([
                target, label, round(statistics.median(pct for pct, _ in values), 1),
                round(statistics.median(calls)) if calls else "-",
            ])  # fmt: skip
    return _table(
        ["target measured", "process", f"{scenario} %core (median)", "writes/s (median)"], rows
    )


def disconnect_table(results: list[dict[str, Any]]) -> str:
    rows = []
    for r in results:
        a = r["away"]
        share = 100 * a["lost"] / a["expected"] if a["expected"] else 0.0
        rows.append([
            r["target"], a["clients"], a["seconds"], a["expected"], a["lost"], f"{share:.1f} %",
            a["repeated"], a["out_of_order"], r["losses"]["lost"] - a["lost"],
        ])  # fmt: skip
    return _table(
        ["target", "clients away", "for s", "updates to them", "lost", "lost share",
         "repeated", "out of order", "lost by the others"],
        rows,
    )  # fmt: skip


def resume_table(results: list[dict[str, Any]]) -> str:
    rows = [
        [
            r["missed"],
            r["resume_s_median"] if r["resume_s_median"] is not None else "failed",
            ", ".join(f"{x:g}" for x in r["resume_s"]),
            r["first_update_s_median"],
            r["lost"],
            r["repeated"],
            "; ".join(r["failed"]) or "-",
        ]
        for r in results
    ]
    return _table(
        ["missed", "resume s (median)", "each", "first update s", "lost", "repeated", "failed"],
        rows,
    )


def hops_table(rounds: list[dict[str, Any]]) -> str:
    """ytmaker's latency in three hops: event → readable in its stage topic (the stage's
    producer), → its update readable in the log (the fold), and the whole way to the client
    (the difference is the gateway, its reads and the socket)."""
    rows = []
    for p in rounds:
        if "in_log_latency_ms" not in p:
            continue
        topic, log, end = p["in_input_latency_ms"], p["in_log_latency_ms"], p["latency_ms"]
        rows.append([
            p["scenario"], p.get("round", "-"), topic["p50"], topic["p99"], log["p50"],
            log["p99"], log["max"], end["p50"], end["p99"], end["max"],
        ])  # fmt: skip
    return _table(
        ["scen.", "round", "→ topic p50", "→ topic p99", "→ log p50", "→ log p99", "→ log max",
         "→ client p50", "→ client p99", "→ client max"],
        rows,
    )  # fmt: skip

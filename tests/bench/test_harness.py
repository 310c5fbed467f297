"""The delivery benchmark (`bench/delivery.py`, issue 11) runs against every target at a tiny
size and reports figures of the expected shape. Benchmarks are not timed tests: nothing here
asserts a latency target, only that the instrument works and its figures are plausible."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from bench.harness.report import cpu_groups, cpu_ratio_line
from tests.support.components import unavailable

ROOT = Path(__file__).resolve().parents[2]
TARGETS = {"ytmaker", "redis", "redis-nodb", "socketio"}

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def results(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    if shutil.which("redis-server") is None:
        unavailable("redis-server is not installed (scripts/apt-packages.txt)")
    out = tmp_path_factory.mktemp("bench")
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap}
    run = subprocess.run(
        [sys.executable, "-m", "bench.delivery", "--tiny", "--history", "--tap", "--out", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=840,
    )
    assert run.returncode == 0, f"{run.stdout[-4000:]}\n{run.stderr[-4000:]}"
    (path,) = out.glob("*.json")
    loaded: dict[str, Any] = json.loads(path.read_text())
    loaded["_plots"] = sorted(p.name for p in (out / path.stem).glob("*.png"))
    loaded["_stdout"] = run.stdout
    return loaded


def test_every_target_is_measured_in_each_scenario_with_ordered_percentiles(
    results: dict[str, Any],
) -> None:
    measured = {(p["target"], p["scenario"]) for p in results["rounds"]}
    assert measured == {(t, s) for t in TARGETS for s in ("S1", "S2")}
    for phase in results["rounds"]:
        latency = phase["latency_ms"]
        assert latency["count"] > 0, phase
        assert 0 < latency["p50"] <= latency["p90"] <= latency["p99"] <= latency["max"], phase
        assert latency["max"] < 60_000, phase
        # the worst of each second of the round: one of them is the round's worst
        assert len(latency["worst_by_second"]) == phase["seconds"], phase
        assert abs(max(latency["worst_by_second"]) - latency["max"]) <= 0.1, phase
        assert 0 < phase["cpu"]["machine_busy_pct"] <= 100, phase
        assert phase["losses"]["expected"] > 0, phase
        start, end = (datetime.fromisoformat(at) for at in phase["window_utc"])
        assert start >= datetime.fromisoformat(results["meta"]["started"]), phase
        assert abs((end - start).total_seconds() - phase["seconds"]) < 0.01, phase
        if phase["target"] == "ytmaker":  # the tap saw the events and their updates arrive
            assert phase["in_input_latency_ms"]["count"] > 0, phase
            assert phase["in_log_latency_ms"]["count"] > 0, phase
            assert phase["in_input_latency_ms"]["p50"] <= phase["in_log_latency_ms"]["p50"], phase
    assert set(results["summary"]) == TARGETS
    assert "## Summary" in results["_stdout"] and "| ytmaker" in results["_stdout"]
    assert "writes/s (median)" in results["_stdout"]


def test_ytmaker_loses_and_repeats_nothing_and_the_baselines_lose_what_was_sent_while_away(
    results: dict[str, Any],
) -> None:
    for phase in results["rounds"] + results["disconnect"]:
        if phase["target"] == "ytmaker":
            losses = phase["losses"]
            assert losses["lost"] == losses["repeated"] == losses["out_of_order"] == 0, phase
    away = {p["target"]: p["away"] for p in results["disconnect"]}
    assert set(away) == TARGETS
    assert away["ytmaker"]["clients"] > 0
    assert away["ytmaker"]["received"] == away["ytmaker"]["expected"] > 0
    assert away["ytmaker"]["lost"] == away["ytmaker"]["repeated"] == 0
    for baseline in ("redis", "redis-nodb", "socketio"):
        assert 0 < away[baseline]["lost"] < away[baseline]["expected"], away[baseline]


def test_cpu_is_counted_for_every_process_of_every_target(results: dict[str, Any]) -> None:
    labels = set(results["rounds"][0]["cpu"]["processes"])
    assert {"loadgen/clients", "loadgen/tap", "ytmaker/kafka", "redis/redis-server"} <= labels
    assert {"redis/fastapi-server", "socketio/socketio-server"} <= labels
    assert {"redis-nodb/redis-server", "redis-nodb/fastapi-server"} <= labels
    services = {label for label in labels if label.startswith("ytmaker/")}
    assert services - {"ytmaker/kafka", "ytmaker/run_local"}, "no ytmaker service found"
    for target in TARGETS:
        assert any(label == f"loadgen/producer-{target}" for label in labels)
    assert results["idle"]["services_pct_of_one_core"] >= 0
    for phase in results["rounds"]:
        groups = cpu_groups(phase["cpu"], phase["target"])
        assert groups["steal"] == phase["cpu"]["steal_pct_of_one_core"] >= 0
        machine_cores = phase["cpu"]["machine_busy_pct"] * (os.cpu_count() or 1)
        assert sum(groups.values()) >= machine_cores - 0.5  # the groups cover the machine
        # every process's messages too: the measured target's producer sent its events, its
        # server wrote frames to the clients; another target's producer stood still
        writes = phase["cpu"]["writes_per_s"]
        assert set(writes) == set(phase["cpu"]["processes"]), phase
        assert writes[f"loadgen/producer-{phase['target']}"] > 0, writes
        server = {"ytmaker": "ytmaker/gateway", "socketio": "socketio/socketio-server"}.get(
            phase["target"], f"{phase['target']}/fastapi-server"
        )
        assert writes[server] > 0, writes
        idle = next(t for t in sorted(TARGETS) if t != phase["target"])
        assert writes[f"loadgen/producer-{idle}"] < writes[f"loadgen/producer-{phase['target']}"]


def test_the_cpu_target_is_read_from_the_benchmarks_own_processes_and_the_machine(
    results: dict[str, Any],
) -> None:
    lines = [cpu_ratio_line(results["summary"], baseline=b) for b in ("redis", "redis-nodb")]
    for line in lines:
        assert line is not None and line in results["_stdout"]
    assert "without its database" not in str(lines[0]) and "without its database" in str(lines[1])
    s1 = {
        "ytmaker": {"target_cpu_pct_median": 80.0, "loadgen_cpu_pct_median": 40.0,
                    "machine_busy_pct_median": 66.0},
        "redis": {"target_cpu_pct_median": 40.0, "loadgen_cpu_pct_median": 40.0,
                  "machine_busy_pct_median": 60.0},
    }  # fmt: skip
    line = cpu_ratio_line({target: {"S1": s} for target, s in s1.items()})
    assert line is not None
    assert "120.0 against 80.0 % of a core, 1.50x" in line
    assert "66.0 against 60.0 %, 1.10x" in line
    assert cpu_ratio_line({"ytmaker": {"S1": s1["ytmaker"]}}) is None  # no Redis design


def test_steal_is_told_apart_from_the_rest_of_the_machine() -> None:
    cores = os.cpu_count() or 1
    cpu = {
        "machine_busy_pct": 100.0 / cores,  # one core's worth
        "steal_pct_of_one_core": 30.0,
        "processes": {"ytmaker/kafka": 40.0, "loadgen/clients": 10.0, "redis/redis-server": 5.0},
    }
    assert cpu_groups(cpu, "ytmaker") == {
        "target": 40.0, "loadgen": 10.0, "other targets": 5.0, "steal": 30.0,
        "rest of machine": 15.0,
    }  # fmt: skip
    del cpu["steal_pct_of_one_core"]  # results written before steal was counted
    assert cpu_groups(cpu, "ytmaker")["rest of machine"] == 45.0


def test_ytmaker_resumes_exactly_fans_out_and_folds_the_history(results: dict[str, Any]) -> None:
    assert [r["missed"] for r in results["resume"]] == [20, 100]
    for figure in results["resume"]:
        assert figure["lost"] == figure["repeated"] == 0, figure
        assert 0 < figure["resume_s_median"] < 60
    fanout = results["fanout"]
    assert fanout["delivered"] >= fanout["clients"] * fanout["updates_per_task"]
    assert fanout["updates_per_s"] > 0 and fanout["incomplete_clients"] == 0
    # the clients ran in processes of their own, each counted
    workers = {f"loadgen/fanout-clients-{i}" for i in range(1, fanout["client_processes"] + 1)}
    assert fanout["client_processes"] == 2 and workers <= set(fanout["cpu"]["processes"])
    history = results["history"]
    assert history["tasks"] == 20
    assert history["updates_per_task"] == 100
    causes = history["updates_by_cause"]  # every task's: each event's update, once
    assert causes["tasks"] == 20 and causes["of_its_events"] == 20 * 100, causes
    assert causes["repeated_events"] == 0 and "faulty_task_histories" not in history


def test_the_plots_are_drawn(results: dict[str, Any]) -> None:
    assert results["_plots"] == ["cpu.png", "latency.png", "resume.png"]

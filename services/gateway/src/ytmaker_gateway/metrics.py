"""The gateway's Prometheus metrics (docs/protocol.md "Metrics"), served at /metrics.

Aggregate counts only: no label holds a user name, a project or task id, or anything else a
client chose (labels are fixed sets of codes), so `/metrics` tells nobody who is connected or
what they watch (docs/decisions/0042-closed-doors-at-the-gateway.md). The operator's views
(`/progress/active`, `/websocket/stats`) give the details, behind the operator role."""

from __future__ import annotations

import gc
import time

from prometheus_client import Counter, Gauge, Histogram

CONNECTED_CLIENTS = Gauge("ytmaker_gateway_connected_clients", "Open WebSocket connections.")
PROJECT_WATCHERS = Gauge(
    "ytmaker_gateway_project_watchers", "Open task subscriptions and per-project streams."
)
MESSAGES_SENT = Counter(
    "ytmaker_gateway_messages_sent_total", "Messages written to WebSockets (rate = per second)."
)
REPLAYS = Counter(
    "ytmaker_gateway_replays_total",
    "Subscriptions that replayed missed updates, by source and whether every update was held.",
    ["source", "recovered"],
)
RECONNECTS = Counter(
    "ytmaker_gateway_reconnects_total",
    "Connections that came with old_client_id; restored=true when the session was found.",
    ["restored"],
)
SLOW_CLIENT_CLOSES = Counter(
    "ytmaker_gateway_slow_client_closes_total", "Connections closed with 1013 (queue full)."
)
TOKENS_IN_URL = Counter(
    "ytmaker_gateway_tokens_in_url_total",
    "Connections and downloads authenticated by the deprecated `?token=` (route `websocket`, "
    "`socketio` or `artifact`): while it grows, a client still puts its token in URLs.",
    ["route"],
)
BAD_INPUT = Counter(
    "ytmaker_gateway_bad_input_total",
    "Rejected client input, by kind (invalid_json, unknown_action, oversize, rate_limited...).",
    ["kind"],
)
BAD_UPDATES = Counter(
    "ytmaker_gateway_bad_updates_total",
    "Records on progress.updates that could not be decoded and were skipped, by reader (live: "
    "the fan-out, once per record; replay: each replay that read it) and decode reason.",
    ["reader", "reason"],
)
DELIVERY_LATENCY = Histogram(
    "ytmaker_gateway_delivery_latency_seconds",
    "From an update's event occurred_at to its write on a socket.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
GC_PAUSE = Histogram(
    "ytmaker_gateway_gc_pause_seconds",
    "Time the event loop stood still in Python's cyclic garbage collector, by generation.",
    ["generation"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25),
)


def watch_gc() -> None:
    """Time every garbage collection into GC_PAUSE (call once per process)."""
    started: list[float] = [0.0]
    by_generation = [GC_PAUSE.labels(str(g)) for g in range(3)]

    def callback(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            by_generation[min(info.get("generation", 2), 2)].observe(
                time.perf_counter() - started[0]
            )

    gc.callbacks.append(callback)

"""Prometheus metrics of the progress service (served at /metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS_FOLDED = Counter("ytmaker_progress_events_folded_total", "Pipeline events folded.")
UPDATES_PUBLISHED = Counter(
    "ytmaker_progress_updates_published_total", "Updates written (committed or not).", ["type"]
)
IGNORED_AFTER_TERMINAL = Counter(
    "ytmaker_progress_ignored_after_terminal_total",
    "Events that arrived after their task had finished (kept in the log, changed nothing).",
)
FOLD_SECONDS = Histogram(
    "ytmaker_progress_fold_seconds",
    "Time to fold one lane's released records and hand their updates to the producer.",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
)
TRANSACTION_SECONDS = Histogram(
    "ytmaker_progress_transaction_seconds",
    "Time to write one lane's checkpoint and commit its transaction.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
)
TRANSACTION_OPEN_SECONDS = Histogram(
    "ytmaker_progress_transaction_open_seconds",
    "How long one lane's transaction stayed open, first update to commit: about the checkpoint "
    "interval, and far below the transaction timeout (decision 0083).",
    buckets=(0.5, 1, 1.5, 2, 3, 5, 10, 20, 40, 60),
)
LANES_FENCED = Counter(
    "ytmaker_progress_lanes_fenced_total",
    "Lane producers fenced by a newer one (a rebalance) or by their transaction's timeout.",
)
SINK_UPDATES = Counter("ytmaker_progress_sink_updates_total", "Updates stored in the read model.")
SINK_LAG = Gauge("ytmaker_progress_sink_lag", "Updates not yet in the read model.")
TASKS_IN_MEMORY = Gauge(
    "ytmaker_progress_fold_tasks_in_memory",
    "Tasks the fold holds: full states (running, or finished within the grace period) and "
    "markers of finished tasks.",
    ["kind"],
)
TASKS_STALLED = Counter(
    "ytmaker_progress_tasks_stalled_total",
    "Tasks failed as `stalled`: silent past their stage's time limit plus the grace.",
)

"""Prometheus metrics of the Kafka runtime, shared by every service (served at /metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS_CONSUMED = Counter(
    "ytmaker_events_consumed_total", "Records taken from Kafka.", ["service", "topic"]
)
EVENTS_PRODUCED = Counter(
    "ytmaker_events_produced_total", "Records acknowledged by Kafka.", ["service", "topic"]
)
DEAD_LETTERED = Counter(
    "ytmaker_events_dead_lettered_total", "Records sent to the DLQ.", ["service", "topic", "reason"]
)
HANDLER_RETRIES = Counter(
    "ytmaker_handler_retries_total",
    "Transient handler failures: the same record is tried again after a backoff.",
    ["service", "topic"],
)
RECORDS_SKIPPED = Counter(
    "ytmaker_records_skipped_total",
    "Undecodable records a reader that must not write skipped (counted, logged once).",
    ["service", "topic", "reason"],
)
HANDLER_SECONDS = Histogram(
    "ytmaker_handler_seconds",
    "Time a handler took for one event.",
    ["service", "event_type"],
    buckets=(0.001, 0.005, 0.02, 0.1, 0.5, 2, 10, 60, 300, 1800),
)
CONSUMER_LAG = Gauge(
    "ytmaker_consumer_lag",
    "Records behind the end of the partition.",
    ["service", "topic", "partition"],
)

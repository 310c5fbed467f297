"""How long the broker may hold a consumer's fetch: short while records flow, long when idle.

aiokafka keeps one fetch in flight per broker, and leaves out of it the partitions whose
records the caller has not taken yet; a record arriving in such a partition waits until the
fetch in flight returns, at most its wait. While records flow, a short wait keeps that delay
small (the progress fold's 10 ms, decision 0026); when nothing comes, every partition is in
the fetch in flight, so the broker answers as soon as a record arrives whatever the wait, and a
short one only costs a fetch request every few milliseconds, for the consumer and the broker.
`AdaptiveFetchWait` switches between the two; it sets aiokafka's private fetch wait, which is
why it lives in this package.
"""

from __future__ import annotations

import time

from aiokafka import AIOKafkaConsumer

#: aiokafka's `consumer_timeout_ms`: the longest its background fetcher sleeps between looks at
#: its partitions. It is woken by every fetch that returns and every record taken, so the
#: interval is only a safety net; its default (200 ms) woke every idle consumer five times a
#: second. The benchmark's idle stack (fold, read side, gateway; 40 s, A/B twice): 1.97 and
#: 1.92 % of a core with the default, 1.55 and 1.73 % with 1,000 ms.
CONSUMER_TIMEOUT_MS = 1000

#: How long an idle fetch may wait. A reader that only follows its topics (the gateway's hub,
#: the read model's sink) loses nothing by a long one: the first record ends it. A consumer
#: that seeks (the fold, when it recovers a lane) waits for the fetch in flight to return
#: before its new position is fetched, so the fold keeps half a second.
IDLE_MS = 2000


class AdaptiveFetchWait:
    """Call `saw(n)` after every poll with how many records it brought."""

    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        *,
        busy_ms: int,
        busy_min_bytes: int = 1,
        idle_ms: int = IDLE_MS,
        idle_after_s: float = 2.0,
    ) -> None:
        """`busy_min_bytes`: how much a fetch may wait for while records flow (a consumer
        that gathers records into batches); idle, a fetch returns with the first record."""
        self.consumer = consumer
        self.busy_ms, self.idle_ms, self.idle_after_s = busy_ms, idle_ms, idle_after_s
        self.busy_min_bytes = busy_min_bytes
        self._last_records = time.monotonic()
        self.idle = False

    def saw(self, records: int) -> None:
        now = time.monotonic()
        if records:
            self._last_records = now
            if self.idle:
                self._set(self.busy_ms, self.busy_min_bytes)
                self.idle = False
        elif not self.idle and now - self._last_records >= self.idle_after_s:
            self._set(self.idle_ms, 1)
            self.idle = True

    def _set(self, wait_ms: int, min_bytes: int) -> None:
        fetcher = getattr(self.consumer, "_fetcher", None)
        if fetcher is not None and hasattr(fetcher, "_fetch_max_wait_ms"):
            fetcher._fetch_max_wait_ms = wait_ms
            fetcher._fetch_min_bytes = min_bytes

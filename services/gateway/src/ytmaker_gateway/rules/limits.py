"""Per-user limits as pure objects: the caller passes the time, nothing here does I/O
(docs/protocol.md "Limits at the edge"; docs/decisions/0042-closed-doors-at-the-gateway.md)."""

from __future__ import annotations

import math
from collections import OrderedDict

#: What a connection refused for the per-user cap is told to wait before it retries (seconds).
CONNECTION_RETRY_AFTER_S = 5


class RateLimiter:
    """A token bucket per key: `burst` at once, refilled at `per_minute`. Keeps the
    `keys` most recently seen keys (a forgotten key starts with a full bucket again)."""

    def __init__(self, per_minute: float, burst: int, *, keys: int = 10_000) -> None:
        self._rate = per_minute / 60.0
        self._burst = float(burst)
        self._keys = keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, key: str, now: float) -> int:
        """Take one token for `key`: 0 when allowed, else the whole seconds to wait before
        one is there (what `Retry-After` says)."""
        tokens, then = self._buckets.pop(key, (self._burst, now))
        tokens = min(self._burst, tokens + max(0.0, now - then) * self._rate)
        if tokens >= 1.0:
            self._remember(key, tokens - 1.0, now)
            return 0
        self._remember(key, tokens, now)
        return max(1, math.ceil((1.0 - tokens) / self._rate))

    def _remember(self, key: str, tokens: float, now: float) -> None:
        self._buckets[key] = (tokens, now)
        while len(self._buckets) > self._keys:
            self._buckets.popitem(last=False)

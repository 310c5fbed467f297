"""How a stage is retried and timed (the first design's Celery settings: 3 attempts for script
and assets, 2 for render, 3 for upload; time limits of 25 and 30 minutes)."""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from typing import Any


@dataclass(frozen=True)
class StagePolicy:
    """`max_attempts` counts the first try. Past `soft_limit_s` the work is cancelled and the
    stage fails with `time_limit`; at `hard_limit_s` work that ignored the cancellation is
    abandoned. Backoff before attempt n+1 is `backoff_base_s * 2**(n-1)`, capped at
    `backoff_max_s`, with full jitter."""

    max_attempts: int = 3
    soft_limit_s: float = 25 * 60.0
    hard_limit_s: float = 30 * 60.0
    backoff_base_s: float = 2.0
    backoff_max_s: float = 60.0
    cancel_grace_s: float = 1.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if not 0 < self.soft_limit_s <= self.hard_limit_s:
            raise ValueError("need 0 < soft_limit_s <= hard_limit_s")
        if self.backoff_base_s < 0 or self.backoff_max_s < 0:
            raise ValueError("backoff times cannot be negative")

    def with_overrides(
        self,
        *,
        max_attempts: int | None = None,
        soft_limit_s: float | None = None,
        hard_limit_s: float | None = None,
        backoff_base_s: float | None = None,
        backoff_max_s: float | None = None,
    ) -> StagePolicy:
        """This policy with every given (not None) value replaced; validated again."""
        changes: dict[str, Any] = {
            k: v
            for k, v in {
                "max_attempts": max_attempts,
                "soft_limit_s": soft_limit_s,
                "hard_limit_s": hard_limit_s,
                "backoff_base_s": backoff_base_s,
                "backoff_max_s": backoff_max_s,
            }.items()
            if v is not None
        }
        return replace(self, **changes)

    def backoff(
        self, attempt: int, *, retry_after_s: float | None = None, rng: random.Random | None = None
    ) -> float:
        """Seconds to wait after failed attempt `attempt` (1-based): full jitter in
        [0, min(cap, base * 2**(attempt-1))], but never less than `retry_after_s`."""
        ceiling = min(self.backoff_max_s, self.backoff_base_s * 2 ** max(0, attempt - 1))
        delay = (rng or random).uniform(0, ceiling)
        if retry_after_s is not None:
            delay = max(delay, min(retry_after_s, self.backoff_max_s))
        return round(delay, 3)

"""Which failures may pass when the same work is tried again.

A consumer stays on a record that failed transiently and tries it again with backoff; only a
record that is itself bad (it cannot be decoded, or its handler refuses it) goes to the
dead-letter topic. Dead-lettering a record because the disk or the network hiccuped loses its
effect for good (a render join that never fires), so the test is generous: every OS, network
and broker error and every timeout counts, and so does any exception that says it is
transient with a `transient = True` attribute (the stage framework's `TransientError`, the
producer's `BrokerUnavailable`).
"""

from __future__ import annotations

import random

from aiokafka.errors import KafkaError

_TRANSIENT: tuple[type[BaseException], ...] = (OSError, TimeoutError, KafkaError)

try:  # httpx is a dependency of most services, not of this package
    import httpx

    _TRANSIENT += (httpx.TransportError,)
except ImportError:  # pragma: no cover - every service installs it today
    pass


def is_transient(exc: BaseException) -> bool:
    """True when trying the same work again may succeed: an exception's own `transient`
    attribute decides when it has one; otherwise its type, or that of the error it was
    raised from (`raise ... from exc`)."""
    for _ in range(5):  # a bounded walk down the chain of causes
        said = getattr(exc, "transient", None)
        if isinstance(said, bool):
            return said
        if isinstance(exc, _TRANSIENT):
            return True
        if exc.__cause__ is None:
            return False
        exc = exc.__cause__
    return False


def backoff_s(attempt: int, *, base_s: float = 0.5, cap_s: float = 30.0) -> float:
    """The wait before retry `attempt` (1-based): exponential from `base_s`, capped at `cap_s`,
    with half of it jittered so that many consumers do not retry in step."""
    ceiling = min(cap_s, base_s * 2.0 ** max(0, attempt - 1))
    return ceiling / 2 + random.uniform(0, ceiling / 2)

"""Which ping a pong answers, as a pure ledger (docs/protocol.md "Sessions"; decisions 0115,
0118): the connection records each ping it queues with what that ping's pong will vouch for
(the offsets queued before it), and asks the ledger what a pong vouches for. Nothing here
reads a socket or the clock.

A pong that echoes a ping's `timestamp` answers that ping, and every older one: the client
reads in order. A pong without one answers the oldest ping not yet answered (clients written
before the echo). A pong that answers no ping held vouches for nothing: a stray or stale echo,
a pong with no ping in flight, or one whose ping was let go to make room.
"""

from __future__ import annotations

from collections import deque
from typing import Generic, TypeVar

Vouched = TypeVar("Vouched")

#: Unanswered pings kept (a client silent for two heartbeat intervals is closed anyway).
PINGS_KEPT = 8


class PingLedger(Generic[Vouched]):
    """The pings queued and not yet answered, oldest first, the latest `kept` of them: each
    one's number (1, 2, … in the order queued), `timestamp`, and what its pong vouches for."""

    def __init__(self, kept: int = PINGS_KEPT) -> None:
        self._held: deque[tuple[int, float, Vouched]] = deque(maxlen=kept)
        self._sent = 0
        self._answered = 0  # the number of the latest ping answered

    def __len__(self) -> int:
        return len(self._held)

    def sent(self, timestamp: float, vouched: Vouched) -> None:
        """A ping with this `timestamp` was queued after what `vouched` describes."""
        self._sent += 1
        self._held.append((self._sent, timestamp, vouched))

    def answer(self, timestamp: float | None) -> Vouched | None:
        """What a pong echoing `timestamp` (None: not echoed) vouches for; None: nothing."""
        number = self._number(timestamp)
        if number is None:
            return None
        self._answered = number
        vouched = None
        while self._held and self._held[0][0] <= number:
            held, _, what = self._held.popleft()
            if held == number:
                vouched = what
        return vouched

    def _number(self, timestamp: float | None) -> int | None:
        """The number of the ping a pong answers, if any."""
        if timestamp is not None:
            return next((number for number, at, _ in self._held if at == timestamp), None)
        return self._answered + 1 if self._answered < self._sent else None

"""Times on the command line: RFC 3339 / ISO 8601 (`2026-01-05T10:00:00Z`, a date alone is
its midnight UTC) or a duration ago (`90s`, `15m`, `2h`, `3d`)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

_AGO = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_time(text: str, now: datetime | None = None) -> datetime:
    """Raises ValueError with a message for people."""
    value = text.strip()
    ago = _AGO.match(value)
    if ago:
        seconds = float(ago.group(1)) * _UNITS[ago.group(2)]
        try:
            return (now or datetime.now(UTC)) - timedelta(seconds=seconds)
        except OverflowError:  # beyond the year 1
            raise ValueError(f"{text!r} is too long ago to be a time") from None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"{text!r} is not a time: use ISO 8601 (2026-01-05T10:00:00Z) or a duration "
            "ago (15m, 2h, 3d)"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def to_ms(moment: datetime) -> int:
    """Milliseconds since the epoch; a time before it is 0, as no Kafka timestamp is lower
    (and the broker refuses a negative one in a look-up by time)."""
    return max(0, int(moment.timestamp() * 1000))

"""The ids the system issues, checked at the edge before any lookup or URL is built
(docs/decisions/0041-strict-input-at-the-gateway.md).

Task and project ids are UUIDs as `ytmaker_shared.events.new_event_id` makes them (lowercase,
hyphenated); client ids are what `core.sessions.new_client_id` makes. Offsets are Kafka offsets,
which are signed 64-bit integers. Pure: no I/O.
"""

from __future__ import annotations

import re

UUID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
CLIENT_ID_PATTERN = r"^c-[0-9a-f]{32}$"
#: The largest offset a Kafka partition can hold (int64); `since` above it is refused.
MAX_OFFSET = 2**63 - 1
#: What an error message shows of a refused id (never the whole of a long one).
SHOWN = 40

_UUID = re.compile(UUID_PATTERN)
_CLIENT_ID = re.compile(CLIENT_ID_PATTERN)


def is_uuid(value: object) -> bool:
    """Whether `value` is an id as the system issues them (a lowercase UUID string)."""
    return isinstance(value, str) and len(value) == 36 and _UUID.match(value) is not None


def is_client_id(value: object) -> bool:
    """Whether `value` is a WebSocket client id as the gateway issues them."""
    return isinstance(value, str) and len(value) == 34 and _CLIENT_ID.match(value) is not None


def is_offset(value: object, *, allow_minus_one: bool = True) -> bool:
    """Whether `value` is an int (not a bool) in the range of Kafka offsets (-1 allowed:
    "the whole run")."""
    low = -1 if allow_minus_one else 0
    return type(value) is int and low <= value <= MAX_OFFSET

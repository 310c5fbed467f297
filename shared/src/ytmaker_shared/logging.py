"""Structured JSON logs, one object a line, carrying the event in hand (task_id, event_id,
correlation_id) from a context variable, so that one run can be followed across services."""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

_context: contextvars.ContextVar[dict[str, str]] = contextvars.ContextVar(
    "ytmaker_log_context",
    default={},  # noqa: B039 - never mutated: log_context sets a new dict
)

_STANDARD_ATTRS = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}

#: Libraries whose INFO lines are per request: aiokafka's, and the HTTP clients' (httpx logs
#: every request with its whole URL, query string included: a signed upload URL or a key
#: passed as a parameter would reach the logs; the gateway's lookups wrote a line for each
#: connecting client). Their warnings and errors still come through.
QUIET_LIBRARIES = ("aiokafka", "httpx", "httpcore")


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
            **_context.get(),
        }
        entry.update(
            (key, value) for key, value in record.__dict__.items() if key not in _STANDARD_ATTRS
        )
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def configure_logging(service: str, level: str = "INFO") -> None:
    """Send every log record of the process to stderr as JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))


@contextmanager
def log_context(**fields: str | None) -> Iterator[None]:
    """Add fields (task_id=..., event_id=...) to every log line written inside the block."""
    token = _context.set(_context.get() | {k: v for k, v in fields.items() if v is not None})
    try:
        yield
    finally:
        _context.reset(token)

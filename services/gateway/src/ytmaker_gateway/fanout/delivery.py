"""One progress update as it travels through the gateway: decoded once, encoded once.

The hub turns every record of `progress.updates` into a `Delivery` whose `text` is the finished
server message, so that a thousand subscribers cost a thousand queue puts, not a thousand
JSON encodings.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Literal, NamedTuple

from ytmaker_gateway import metrics
from ytmaker_gateway.rules.protocol import update_message
from ytmaker_shared.events import DecodeError, decode_model
from ytmaker_shared.metrics import RECORDS_SKIPPED
from ytmaker_shared.progress import ProgressUpdate

log = logging.getLogger(__name__)


class Delivery(NamedTuple):
    """A tuple of strings and numbers: cheap to make (a replay makes one per update). Unlike a
    plain tuple, the garbage collector tracks it for ever: the hub's cache keeps plain ones
    (fanout/cache.py)."""

    partition: int
    offset: int
    task_id: str
    project_id: str
    owner: str
    kind: str
    status: str  # the task's, after this update
    occurred_at: float
    text: str


def delivery_from_record(
    partition: int, offset: int, value: bytes | None, epoch: str | None, *, live: bool = True
) -> Delivery:
    """Decode one record of progress.updates through the one decode entry point of every
    consumer (`ytmaker_shared.events.decode_model`); raises DecodeError and nothing else,
    whatever the bytes. A replayed one (`live=False`) has no `occurred_at` (0.0): it is only
    for the delivery-latency metric of live updates."""
    update = decode_model(ProgressUpdate, value)
    return Delivery(
        partition,
        offset,
        update.task_id,
        update.project_id,
        update.owner,
        str(update.type),
        str(update.state.status),
        update.occurred_at.timestamp() if live else 0.0,
        update_message(update, offset, epoch),
    )


def key_mismatch(key: str, task_id: str) -> DecodeError:
    """The error of a record keyed by task `key` whose update is of task `task_id`: a replay
    selects a task's records by key, and must not send another task's update as its own."""
    return DecodeError(
        "key_mismatch", f"a record keyed by task {key!r} holds an update of task {task_id!r}"
    )


class BadRecords:
    """Unreadable records of progress.updates (and readable ones that are not where their task
    is: `wrong_partition`, `key_mismatch`): each is counted where it is skipped
    (`ytmaker_gateway_bad_updates_total{reader, reason}`; the fan-out's, once per record, also
    in every service's `ytmaker_records_skipped_total{service="gateway"}`) and logged once per
    partition and offset, however many replays read it again. The gateway only reads: nothing
    is written anywhere (the dead-letter topic is for the consumers that own the records)."""

    def __init__(self, remember: int = 10_000) -> None:
        self._remember = remember
        self._logged: OrderedDict[tuple[int, int], None] = OrderedDict()

    def skip(
        self,
        topic: str,
        partition: int,
        offset: int,
        error: DecodeError,
        reader: Literal["live", "replay"],
    ) -> None:
        metrics.BAD_UPDATES.labels(reader, error.reason).inc()
        if reader == "live":
            RECORDS_SKIPPED.labels("gateway", topic, error.reason).inc()
        key = (partition, offset)
        if key in self._logged:
            return
        self._logged[key] = None
        if len(self._logged) > self._remember:
            self._logged.popitem(last=False)
        log.warning(
            "unreadable update skipped",
            extra={
                "topic": topic,
                "partition": partition,
                "offset": offset,
                "reason": error.reason,
                "detail": error.detail,
            },
        )


#: One per process: the hub and the replay readers report here.
BAD_RECORDS = BadRecords()

"""What a reader that must not write does with a record it cannot decode.

Consumers in a group that own their records dead-letter a bad one (`ConsumerLoop`, the fold).
Readers without a group (every stage instance reading `pipeline.control`, the read model's
sink, the ETA projector, the gateway's fan-out) see records that some owner dead-letters; they
count the record, log it once with its coordinates, and move on.
"""

from __future__ import annotations

import logging
from typing import Any

from ytmaker_shared.events import DecodeError
from ytmaker_shared.metrics import RECORDS_SKIPPED

log = logging.getLogger(__name__)


def skip_record(service: str, record: Any, error: DecodeError) -> None:
    """Count and log one undecodable record (`record` has topic, partition and offset)."""
    RECORDS_SKIPPED.labels(service, record.topic, error.reason).inc()
    log.warning(
        "skipped an undecodable record",
        extra={
            "topic": record.topic,
            "partition": record.partition,
            "offset": record.offset,
            "reason": error.reason,
            "detail": error.detail,
        },
    )

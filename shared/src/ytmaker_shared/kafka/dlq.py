"""Dead letters: a record that cannot be handled goes to `pipeline.dlq` as it was.

The value and key are the original bytes; headers say where it came from and why it failed
(the same idea as Kafka Connect's dead-letter context headers).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiokafka.structs import ConsumerRecord, RecordMetadata

from ytmaker_shared.kafka.producer import EventProducer
from ytmaker_shared.metrics import DEAD_LETTERED
from ytmaker_shared.topics import Topic

log = logging.getLogger(__name__)

#: The headers a dead letter adds to the record's own begin with this.
HEADER_PREFIX = "ytmaker.dlq."


@dataclass(frozen=True)
class DeadLetter:
    """A dead letter as read back from `pipeline.dlq`."""

    topic: str
    partition: int
    offset: int
    reason: str
    detail: str
    consumer_group: str
    service: str
    failed_at: str
    key: bytes | None
    value: bytes | None

    @classmethod
    def from_record(cls, record: ConsumerRecord[Any, Any]) -> DeadLetter:
        h = {
            k[len(HEADER_PREFIX) :]: v.decode()
            for k, v in record.headers
            if k.startswith(HEADER_PREFIX)
        }
        return cls(
            topic=h["topic"],
            partition=int(h["partition"]),
            offset=int(h["offset"]),
            reason=h["reason"],
            detail=h.get("detail", ""),
            consumer_group=h.get("group", ""),
            service=h.get("service", ""),
            failed_at=h.get("failed_at", ""),
            key=record.key,
            value=record.value,
        )


class DeadLetterWriter:
    def __init__(self, producer: EventProducer, consumer_group: str) -> None:
        self.producer = producer
        self.consumer_group = consumer_group

    async def write(
        self, record: ConsumerRecord[Any, Any], reason: str, detail: str
    ) -> RecordMetadata:
        """Send the record with its coordinates and reason; raises BrokerUnavailable."""
        context = {
            "topic": record.topic,
            "partition": str(record.partition),
            "offset": str(record.offset),
            "reason": reason,
            "detail": detail[:4000],
            "group": self.consumer_group,
            "service": self.producer.service,
            "failed_at": datetime.now(UTC).isoformat(),
        }
        headers = [
            *(record.headers or ()),
            *((HEADER_PREFIX + k, v.encode()) for k, v in context.items()),
        ]
        metadata = await self.producer.send_raw(
            self.producer.settings.topics.name(Topic.DLQ),
            key=record.key,
            value=record.value,
            headers=headers,
        )
        DEAD_LETTERED.labels(self.producer.service, record.topic, reason).inc()
        log.warning(
            "dead-lettered a record",
            extra={k: context[k] for k in ("topic", "partition", "offset", "reason", "detail")},
        )
        return metadata

"""The one way services write events: idempotent, `acks=all`, keyed by `task_id`.

A send that the broker has not acknowledged within the delivery deadline raises
`BrokerUnavailable`: the caller learns of it, nothing is dropped silently.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.structs import RecordMetadata
from prometheus_client import Counter

from ytmaker_shared.events import Event, encode
from ytmaker_shared.kafka.connection import NOT_AUTHORIZED, aiokafka_connection, close_client
from ytmaker_shared.metrics import EVENTS_PRODUCED
from ytmaker_shared.settings import ServiceSettings
from ytmaker_shared.topics import Topic, partition_by_key

log = logging.getLogger(__name__)

Headers = Sequence[tuple[str, bytes]]


class BrokerUnavailable(RuntimeError):
    """The broker did not answer within the configured deadline."""

    transient = True  # ytmaker_shared.transient: the same send may succeed later


class EventProducer:
    """Owns one AIOKafkaProducer. `start()` before use, `stop()` after (flushes)."""

    def __init__(self, settings: ServiceSettings, service: str, **producer_options: Any) -> None:
        self.settings = settings
        self.service = service
        self._deadline = settings.producer_delivery_timeout_s
        options: dict[str, Any] = {
            "linger_ms": settings.producer_linger_ms,
            "request_timeout_ms": int(min(self._deadline, 30) * 1000),
            "partitioner": partition_by_key,  # the default one, its murmur2 cached
        }
        self.kafka = AIOKafkaProducer(
            **aiokafka_connection(settings),
            client_id=f"{service}-{settings.instance}",
            acks="all",
            enable_idempotence=True,
            **(options | producer_options),  # the caller's options win
        )
        self._adding: dict[str, asyncio.Lock] = {}  # per topic, see `send_raw`
        self._produced: dict[str, Counter] = {}  # per topic: EVENTS_PRODUCED's child

    async def start(self) -> None:
        """Connect; raises BrokerUnavailable when no broker answers before the deadline."""
        loop = asyncio.get_running_loop()
        give_up = loop.time() + self._deadline
        while True:
            try:
                await self.kafka.start()
                return
            except NOT_AUTHORIZED:
                raise  # an ACL is missing: retrying changes nothing
            except KafkaError as exc:
                if loop.time() >= give_up:
                    raise BrokerUnavailable(
                        f"no Kafka broker at {self.settings.kafka_bootstrap_servers} "
                        f"after {self._deadline:.0f}s: {exc}"
                    ) from exc
                await asyncio.sleep(0.5)

    async def stop(self) -> None:
        await close_client(self.kafka.stop(), f"{self.service} producer")

    async def __aenter__(self) -> EventProducer:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    async def send(self, topic: Topic, event: Event) -> RecordMetadata:
        """Write one event to its topic, keyed by its task; wait for the acknowledgement."""
        return await self.send_raw(
            self.settings.topics.name(topic), key=event.task_id.encode(), value=encode(event)
        )

    async def send_raw(
        self,
        topic_name: str,
        *,
        key: bytes | None,
        value: bytes | None,
        headers: Headers = (),
    ) -> RecordMetadata:
        """Write bytes as they are; raises BrokerUnavailable past the delivery deadline.

        Sends to one topic join its batch one at a time. aiokafka keeps one open batch per
        partition; when it is full, every send that finds it full waits for it to be sent,
        and all of them are woken at once, one batch's worth gets in, the rest wait again:
        with n sends waiting that is ~n² wake-ups, which left a stage's producer with 1,000
        tasks reporting spending its whole core on them once the broker had slowed for a
        moment, and never catching up (decision 0102). Behind a lock, one send waits for the
        batch and the others for the lock, each woken once."""
        adding = self._adding.get(topic_name)
        if adding is None:
            adding = self._adding[topic_name] = asyncio.Lock()
        try:
            async with asyncio.timeout(self._deadline):
                async with adding:
                    sent = await self.kafka.send(
                        topic_name, value=value, key=key, headers=list(headers) or None
                    )
                metadata: RecordMetadata = await sent
        except NOT_AUTHORIZED:
            raise  # the broker's own word (an ACL is missing), still transient to a consumer
        except (TimeoutError, KafkaError) as exc:
            raise BrokerUnavailable(
                f"{topic_name}: not acknowledged within {self._deadline:.0f}s: {exc!r}"
            ) from exc
        produced = self._produced.get(topic_name)
        if produced is None:
            produced = self._produced[topic_name] = EVENTS_PRODUCED.labels(self.service, topic_name)
        produced.inc()
        return metadata

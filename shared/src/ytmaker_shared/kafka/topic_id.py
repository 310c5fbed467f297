"""A topic's id (its *epoch*, docs/architecture.md), read with Kafka's Metadata request version 10.

aiokafka speaks Metadata up to version 5, which has no topic ids, so this module adds the one
request version that carries them (KIP-516: `topic_id`, a UUID, in Metadata v10 and later).
The id is shown like Kafka's own tools show it (URL-safe base64 without padding), so that an
operator can compare it with `kafka-topics.sh --describe`.
"""

from __future__ import annotations

import base64
from io import BytesIO
from typing import Any

from aiokafka.client import AIOKafkaClient
from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.types import (
    AbstractType,
    Boolean,
    CompactArray,
    CompactString,
    Int16,
    Int32,
    Schema,
    TaggedFields,
)

_ZERO_UUID = bytes(16)


class _Uuid(AbstractType[bytes]):  # type: ignore[misc]
    @classmethod
    def encode(cls, value: bytes) -> bytes:
        return value

    @classmethod
    def decode(cls, data: BytesIO) -> bytes:
        value = data.read(16)
        if len(value) != 16:
            raise ValueError("buffer underrun decoding a UUID")
        return value


class _MetadataResponseV10(Response):  # type: ignore[misc]
    API_KEY = 3
    API_VERSION = 10
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        (
            "brokers",
            CompactArray(
                ("node_id", Int32),
                ("host", CompactString("utf-8")),
                ("port", Int32),
                ("rack", CompactString("utf-8")),
                ("tags", TaggedFields),
            ),
        ),
        ("cluster_id", CompactString("utf-8")),
        ("controller_id", Int32),
        (
            "topics",
            CompactArray(
                ("error_code", Int16),
                ("name", CompactString("utf-8")),
                ("topic_id", _Uuid),
                ("is_internal", Boolean),
                (
                    "partitions",
                    CompactArray(
                        ("error_code", Int16),
                        ("partition_index", Int32),
                        ("leader_id", Int32),
                        ("leader_epoch", Int32),
                        ("replica_nodes", CompactArray(Int32)),
                        ("isr_nodes", CompactArray(Int32)),
                        ("offline_replicas", CompactArray(Int32)),
                        ("tags", TaggedFields),
                    ),
                ),
                ("topic_authorized_operations", Int32),
                ("tags", TaggedFields),
            ),
        ),
        ("cluster_authorized_operations", Int32),
        ("tags", TaggedFields),
    )


class _MetadataRequestV10(RequestStruct):  # type: ignore[misc]
    FLEXIBLE_VERSION = True
    API_KEY = 3
    API_VERSION = 10
    RESPONSE_TYPE = _MetadataResponseV10
    SCHEMA = Schema(
        (
            "topics",
            CompactArray(
                ("topic_id", _Uuid),
                ("name", CompactString("utf-8")),
                ("tags", TaggedFields),
            ),
        ),
        ("allow_auto_topic_creation", Boolean),
        ("include_cluster_authorized_operations", Boolean),
        ("include_topic_authorized_operations", Boolean),
        ("tags", TaggedFields),
    )


class _TopicIdRequest(Request[_MetadataRequestV10]):  # type: ignore[misc]
    API_KEY = 3

    def __init__(self, topics: list[str]) -> None:
        self._topics = topics

    def build(self, request_struct_class: type[_MetadataRequestV10]) -> _MetadataRequestV10:
        return request_struct_class(
            [(_ZERO_UUID, name, {}) for name in self._topics], False, False, False, {}
        )


class TopicIdUnavailable(RuntimeError):
    """The broker does not know the topic, or is too old to have topic ids (before 2.8)."""


def format_topic_id(raw: bytes) -> str:
    """Kafka's text form of a topic id: URL-safe base64, no padding."""
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


async def fetch_topic_id(client: AIOKafkaClient, topic: str) -> str:
    """The id of `topic` from any broker of a started client. Raises TopicIdUnavailable."""
    node_id = client.get_random_node()
    if node_id is None:
        raise TopicIdUnavailable("no broker is known yet")
    try:
        response: Any = await client.send(node_id, _TopicIdRequest([topic]))
    except Exception as exc:
        raise TopicIdUnavailable(f"metadata v10 request failed: {exc!r}") from exc
    for error_code, name, topic_id, *_ in response.topics:
        if name == topic and error_code == 0 and topic_id != _ZERO_UUID:
            return format_topic_id(topic_id)
    raise TopicIdUnavailable(f"the broker gave no id for topic {topic}")

"""How a client reaches the broker: its address and, beyond one machine, who it is; and how
it leaves (`close_client`: a stop bounded, decision 0142).

Every Kafka client a service or the command line makes takes its connection from here, so that
a deployment whose brokers want a user (SCRAM over TLS, docs/deploy.md, decision 0122) needs
only the settings `YTMAKER_KAFKA_SECURITY_PROTOCOL`, `_USERNAME`, `_PASSWORD` and `_CA_FILE`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any

from aiokafka.errors import (
    ClusterAuthorizationFailedError,
    GroupAuthorizationFailedError,
    TopicAuthorizationFailedError,
    TransactionalIdAuthorizationFailed,
)
from aiokafka.helpers import create_ssl_context

from ytmaker_shared.settings import ServiceSettings

log = logging.getLogger(__name__)

#: How long a client's `stop()` may take: what it must still do (leave its group, send its last
#: batches) takes milliseconds; past this it only waits for a TLS goodbye (`close_client`).
STOP_WAIT_S = 5.0

#: What the broker answers when this service's user lacks an ACL: waiting does not change it.
NOT_AUTHORIZED = (
    ClusterAuthorizationFailedError,
    GroupAuthorizationFailedError,
    TopicAuthorizationFailedError,
    TransactionalIdAuthorizationFailed,
)


def aiokafka_connection(settings: ServiceSettings) -> dict[str, Any]:
    """The keyword arguments that connect an aiokafka client (producer, consumer, admin)."""
    protocol = settings.kafka_security_protocol
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "security_protocol": protocol,
    }
    if protocol.startswith("SASL_"):
        assert settings.kafka_password is not None  # the settings' validator
        options |= {
            "sasl_mechanism": settings.kafka_sasl_mechanism,
            "sasl_plain_username": settings.kafka_username,
            "sasl_plain_password": settings.kafka_password.get_secret_value(),
        }
    if protocol == "SASL_SSL":
        ca = settings.kafka_ca_file
        options["ssl_context"] = create_ssl_context(cafile=str(ca) if ca else None)
    return options


def librdkafka_connection(settings: ServiceSettings) -> dict[str, Any]:
    """The same connection as librdkafka's configuration properties (confluent-kafka)."""
    protocol = settings.kafka_security_protocol
    config: dict[str, Any] = {
        "bootstrap.servers": settings.kafka_bootstrap_servers,
        "security.protocol": protocol.lower(),
    }
    if protocol.startswith("SASL_"):
        assert settings.kafka_password is not None  # the settings' validator
        config |= {
            "sasl.mechanisms": settings.kafka_sasl_mechanism,
            "sasl.username": settings.kafka_username,
            "sasl.password": settings.kafka_password.get_secret_value(),
        }
    if protocol == "SASL_SSL" and settings.kafka_ca_file is not None:
        config["ssl.ca.location"] = str(settings.kafka_ca_file)
    return config


async def close_client(closing: Awaitable[None], name: str, within_s: float = STOP_WAIT_S) -> None:
    """Await `closing`, an aiokafka client's `stop()` (consumer, producer) or `close()`
    (admin), for at most `within_s`.

    A client ends by closing its connections and waiting until each has closed. Over TLS that
    means waiting for the broker's close_notify, and asyncio gives it 30 s (its
    `ssl_shutdown_timeout`, which aiokafka does not let a caller set). A connection closed with
    a request in flight sometimes never gets one from Kafka, and the stop took the whole 30 s:
    a pod past its termination grace, a fold ready 30 s late after reading its checkpoints
    (decision 0142). Cut short, the connections are already closed on our side; the event loop
    ends their goodbye by itself."""
    try:
        async with asyncio.timeout(within_s):
            await closing
    except TimeoutError:
        log.info(
            "kafka client left to close on its own", extra={"client": name, "after_s": within_s}
        )

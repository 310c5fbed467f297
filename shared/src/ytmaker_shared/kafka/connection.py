"""How a client reaches the broker: its address and, beyond one machine, who it is.

Every Kafka client a service or the command line makes takes its connection from here, so that
a deployment whose brokers want a user (SCRAM over TLS, docs/deploy.md, decision 0122) needs
only the settings `YTMAKER_KAFKA_SECURITY_PROTOCOL`, `_USERNAME`, `_PASSWORD` and `_CA_FILE`.
"""

from __future__ import annotations

from typing import Any

from aiokafka.errors import (
    ClusterAuthorizationFailedError,
    GroupAuthorizationFailedError,
    TopicAuthorizationFailedError,
    TransactionalIdAuthorizationFailed,
)
from aiokafka.helpers import create_ssl_context

from ytmaker_shared.settings import ServiceSettings

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

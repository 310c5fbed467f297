"""The Kafka connection settings (decision 0122): a user only with a protocol that uses it,
and the same connection handed to aiokafka and to librdkafka."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from ytmaker_shared.kafka.connection import aiokafka_connection, librdkafka_connection
from ytmaker_shared.settings import ServiceSettings

USER = {"kafka_username": "script", "kafka_password": "s3cret"}


def settings(**values: Any) -> ServiceSettings:
    return ServiceSettings(kafka_bootstrap_servers="kafka:9093", **values)


def test_one_machine_speaks_plaintext_without_a_user() -> None:
    assert aiokafka_connection(settings()) == {
        "bootstrap_servers": "kafka:9093",
        "security_protocol": "PLAINTEXT",
    }
    assert librdkafka_connection(settings()) == {
        "bootstrap.servers": "kafka:9093",
        "security.protocol": "plaintext",
    }


def test_a_user_signs_in_with_scram_in_both_clients() -> None:
    s = settings(kafka_security_protocol="SASL_PLAINTEXT", **USER)
    assert aiokafka_connection(s) == {
        "bootstrap_servers": "kafka:9093",
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "script",
        "sasl_plain_password": "s3cret",
    }
    assert librdkafka_connection(s) == {
        "bootstrap.servers": "kafka:9093",
        "security.protocol": "sasl_plaintext",
        "sasl.mechanisms": "SCRAM-SHA-512",
        "sasl.username": "script",
        "sasl.password": "s3cret",
    }
    assert "s3cret" not in repr(s)


def test_tls_checks_the_brokers_against_the_given_authorities(tmp_path: Path) -> None:
    system = aiokafka_connection(settings(kafka_security_protocol="SASL_SSL", **USER))
    context = system["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname

    ca = tmp_path / "ca.crt"
    ca.write_text("not a certificate")
    with_ca = settings(kafka_security_protocol="SASL_SSL", kafka_ca_file=ca, **USER)
    assert librdkafka_connection(with_ca)["ssl.ca.location"] == str(ca)
    with pytest.raises(ssl.SSLError):  # the file is read, not merely named
        aiokafka_connection(with_ca)


@pytest.mark.parametrize(
    ("values", "says"),
    [
        ({"kafka_security_protocol": "SASL_SSL"}, "needs YTMAKER_KAFKA_USERNAME"),
        ({"kafka_security_protocol": "SASL_SSL", "kafka_username": "x"}, "KAFKA_PASSWORD"),
        (USER, "would not use it"),
        ({"kafka_password": "s3cret"}, "would not use it"),
        ({"kafka_ca_file": "/etc/ca.crt"}, "uses no TLS"),
        ({"kafka_security_protocol": "SSL"}, "SASL_PLAINTEXT"),
    ],
)
def test_a_user_without_a_protocol_or_the_reverse_is_refused(
    values: dict[str, str], says: str
) -> None:
    with pytest.raises(ValidationError, match=says) as refused:
        settings(**values)
    assert "s3cret" not in str(refused.value)

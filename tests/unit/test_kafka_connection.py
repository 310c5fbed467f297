"""The Kafka connection settings (decision 0122): a user only with a protocol that uses it,
and the same connection handed to aiokafka and to librdkafka; a client's stop is bounded
(decision 0142)."""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from pathlib import Path
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError
from pydantic import ValidationError

from ytmaker_shared.kafka.connection import (
    aiokafka_connection,
    close_client,
    librdkafka_connection,
)
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


class _Client:
    """A client whose `stop()` takes `takes_s` (None: never ends) or raises `fails`."""

    def __init__(self, takes_s: float | None, fails: Exception | None = None) -> None:
        self.takes_s, self.fails = takes_s, fails
        self.stopped = self.cancelled = False

    async def stop(self) -> None:
        try:
            await (
                asyncio.sleep(self.takes_s) if self.takes_s is not None else asyncio.Event().wait()
            )
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        if self.fails is not None:
            raise self.fails
        self.stopped = True


async def test_a_client_stop_is_awaited_to_its_end(caplog: pytest.LogCaptureFixture) -> None:
    client = _Client(takes_s=0.05)
    caplog.set_level(logging.INFO, logger="ytmaker_shared.kafka.connection")
    await close_client(client.stop(), "reader", within_s=5.0)
    assert client.stopped and not client.cancelled
    assert "left to close" not in caplog.text


async def test_a_stop_waiting_on_the_broker_is_cut_short(caplog: pytest.LogCaptureFixture) -> None:
    """A TLS goodbye the broker never answers held a stop for asyncio's 30 s (decision 0142)."""
    client = _Client(takes_s=None)
    caplog.set_level(logging.INFO, logger="ytmaker_shared.kafka.connection")
    started = time.monotonic()
    await close_client(client.stop(), "progress-restore", within_s=0.2)
    assert 0.2 <= time.monotonic() - started < 2.0
    assert client.cancelled and not client.stopped
    (record,) = [
        r for r in caplog.records if r.getMessage() == "kafka client left to close on its own"
    ]
    assert record.__dict__["client"] == "progress-restore"


async def test_a_stop_that_fails_says_so() -> None:
    with pytest.raises(KafkaConnectionError):
        await close_client(
            _Client(takes_s=0, fails=KafkaConnectionError("gone")).stop(), "producer"
        )

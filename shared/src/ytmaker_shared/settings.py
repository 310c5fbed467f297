"""Settings shared by every service, from environment variables (docs/settings.md lists them).

Each service extends `ServiceSettings` with its own fields; secrets are read from the
environment only and are `SecretStr`, so they never reach a log line or a repr.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Literal, Self

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ytmaker_shared.topics import Topics


def single_host_partitions() -> int:
    """Partitions of new topics when every service shares one machine (`make run`, the
    benchmarks): one. Everything that reads a partition runs in one process there (one fold,
    one gateway), so a second partition parallelises nothing and doubles the fold's produce
    requests and the wake-ups of every reader (docs/decisions/0097; 0034 had one per core)."""
    return 1


def _default_instance() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class ServiceSettings(BaseSettings):
    """What every ytmaker process needs: the broker, its topics, logging and health."""

    # an error names the setting and the rule, never the value: it may be a password
    model_config = SettingsConfigDict(
        env_prefix="YTMAKER_", extra="ignore", hide_input_in_errors=True
    )

    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:9092",
        validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS", "YTMAKER_KAFKA_BOOTSTRAP_SERVERS"),
        description="Kafka bootstrap servers, comma-separated.",
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        default="PLAINTEXT",
        description="How the services reach the broker: PLAINTEXT (one machine, `make run`), "
        "or SASL over TLS or plain TCP with the user below (docs/deploy.md, decision 0122).",
    )
    kafka_sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256"] = Field(
        default="SCRAM-SHA-512", description="The SASL mechanism of `kafka_username`."
    )
    kafka_username: str | None = Field(
        default=None, description="This service's Kafka user (its ACLs say what it may do)."
    )
    kafka_password: SecretStr | None = Field(
        default=None, description="The password of `kafka_username`."
    )
    kafka_ca_file: Path | None = Field(
        default=None,
        description="PEM file of the certificate authorities that sign the brokers' "
        "certificates (SASL_SSL); the system's when unset.",
    )
    topic_prefix: str = Field(default="", description="Prefix before every topic name.")
    topic_partitions: int = Field(default=6, ge=1, description="Partitions of new topics.")
    topic_replication_factor: int = Field(default=1, ge=1)
    instance: str = Field(
        default_factory=_default_instance, description="This process's name in `producer`."
    )
    log_level: str = Field(
        default="INFO",
        description="The services' own log level; aiokafka, httpx and httpcore log warnings "
        "and errors only (their INFO lines are per request).",
    )
    health_host: str = "127.0.0.1"
    health_port: int = Field(default=0, ge=0, le=65535, description="0 picks a free port.")
    producer_delivery_timeout_s: float = Field(
        default=30.0, gt=0, description="How long a send may wait for the broker before failing."
    )
    producer_linger_ms: int = Field(
        default=3,
        ge=0,
        le=1000,
        description="How long a producer gathers events into one request (decision 0043).",
    )
    consumer_batch_size: int = Field(default=100, ge=1, description="Records per poll, at most.")
    consumer_max_poll_interval_s: float = Field(
        default=40 * 60.0, gt=0, description="Longest pause between polls before a rebalance."
    )
    max_in_flight: int = Field(default=4, ge=1, description="Partitions handled at once.")
    event_loop: Literal["auto", "asyncio", "uvloop"] = Field(
        default="auto",
        description="auto: uvloop when installed (docs/decisions/0033, 0034).",
    )
    internal_token: SecretStr | None = Field(
        default=None,
        description="The service credential: a shared secret that internal APIs require "
        "(`Authorization: Bearer`) and their callers present. The progress service refuses "
        "to serve its API without one.",
    )
    broker_startup_wait_s: float = Field(
        default=120.0,
        ge=0,
        description="How long a starting process waits for an unreachable broker.",
    )
    # The garbage collector's schedule (gcpolicy.py, decisions 0033, 0044, 0106, 0112, 0120).
    gc_freeze: bool = Field(
        default=True,
        description="Freeze what start-up leaves out of the collector's reach and run full "
        "collections on a schedule, not Python's (gcpolicy.py).",
    )
    gc_freeze_interval_s: float = Field(
        default=10.0, gt=0, description="How often the schedule looks at its clock."
    )
    gc_full_every_s: float = Field(
        default=600.0,
        ge=0,
        description="A full collection (all but the frozen start-up heap) at most this often "
        "(0: never), and only once the heap has grown by a quarter beyond what the process "
        "held after the first such period (decisions 0106, 0112, 0120).",
    )
    gc_threshold: int = Field(
        default=0, ge=0, description="Young-generation threshold; 0 keeps Python's (700)."
    )

    @model_validator(mode="after")
    def _kafka_user_matches_protocol(self) -> Self:
        sasl = self.kafka_security_protocol.startswith("SASL_")
        if sasl and not (self.kafka_username and self.kafka_password):
            raise ValueError(
                f"YTMAKER_KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol} needs "
                "YTMAKER_KAFKA_USERNAME and YTMAKER_KAFKA_PASSWORD"
            )
        if not sasl and (self.kafka_username or self.kafka_password):
            raise ValueError(
                "a Kafka user is set but YTMAKER_KAFKA_SECURITY_PROTOCOL is PLAINTEXT, "
                "which would not use it: set SASL_SSL or SASL_PLAINTEXT"
            )
        if self.kafka_ca_file is not None and self.kafka_security_protocol != "SASL_SSL":
            raise ValueError("YTMAKER_KAFKA_CA_FILE is set but the protocol uses no TLS")
        return self

    @property
    def topics(self) -> Topics:
        return Topics(self.topic_prefix)

"""What the local broker raises: one base class, so a caller can catch them all."""

from __future__ import annotations


class DevKafkaError(RuntimeError):
    """Base class: the local broker cannot be fetched, started or stopped."""


class ToolMissingError(DevKafkaError):
    """A program the local broker needs (java, mvn) is not installed."""


class FetchError(DevKafkaError):
    """Fetching the Kafka jars with Maven failed."""


class BrokerStartError(DevKafkaError):
    """The broker did not come up (it died, or no client could bootstrap before the deadline)."""


class PortInUseError(BrokerStartError):
    """A port the broker needs is already taken on 127.0.0.1."""


class BrokerAlreadyRunningError(DevKafkaError):
    """Another process already runs a broker on this data directory."""

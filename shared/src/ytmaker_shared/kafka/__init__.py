"""The Kafka runtime every service uses: producer, consumer loop with DLQ, topic bootstrap."""

from ytmaker_shared.kafka.admin import delete_topics, ensure_topics, wait_for_broker
from ytmaker_shared.kafka.consumer import ConsumerLoop, Handler, Retry
from ytmaker_shared.kafka.dlq import DeadLetter, DeadLetterWriter
from ytmaker_shared.kafka.producer import BrokerUnavailable, EventProducer

__all__ = [
    "BrokerUnavailable",
    "ConsumerLoop",
    "DeadLetter",
    "DeadLetterWriter",
    "EventProducer",
    "Handler",
    "Retry",
    "delete_topics",
    "ensure_topics",
    "wait_for_broker",
]

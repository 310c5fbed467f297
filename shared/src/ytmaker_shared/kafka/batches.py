"""Writing many records to one partition in batches.

aiokafka's `send` looks up the topic's metadata for every record (a tenth of the progress
fold's CPU when it wrote per record); `send_batch` does it once per batch. A `PartitionWriter`
fills a batch, sends it when the next record would not fit or on `flush`, and remembers what it
sent so that `acked_end` can tell, once the broker has acknowledged everything, the offset after
the last record written.

A record may also come with *ending* headers: headers it carries only if it is the last of its
batch. Every batch sent then ends with a record that carries its own. The broker appends a batch
whole or not at all, so whatever prefix of the writes reaches the log ends with such a record:
the progress fold puts its input positions there instead of on every update (decision 0109).
To know which record ends a batch, the writer holds the latest one back until the next write
(or a flush) shows whether both fit.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from itertools import chain
from typing import NamedTuple

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.producer.transaction_manager import TransactionState
from aiokafka.structs import RecordMetadata

Headers = Sequence[tuple[str, bytes]]
#: Makes a record's ending headers, called only for a record that ends its batch.
Ending = Callable[[], Headers]

#: Room kept in every batch for the ending headers of its last record. Larger ones are refused.
ENDING_RESERVE = 2048
#: At most what a record adds to a batch beyond its key, value and header bytes (Kafka's record
#: format v2: a length, attributes, offset and timestamp deltas, and a length per field, all
#: varints), and what a batch starts with (its 61-byte header).
_RECORD_OVERHEAD = 40
_HEADER_OVERHEAD = 10
_BATCH_OVERHEAD = 64


class RecordTooLarge(ValueError):
    """Ending headers larger than the room kept for them."""


class _Held(NamedTuple):
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
    ending: Ending | None
    size: int  # an upper bound of what it adds to a batch, without its ending headers


class PartitionWriter:
    """Records for one partition of `topic`, in order. Use inside the producer's transaction
    when it is transactional. `batch_bytes` is the producer's `max_batch_size`; a record
    larger than that goes in a batch of its own (the broker's limit on a batch still holds)."""

    def __init__(
        self, kafka: AIOKafkaProducer, topic: str, partition: int, *, batch_bytes: int
    ) -> None:
        self.kafka, self.topic, self.partition = kafka, topic, partition
        self.batch_bytes = batch_bytes
        self._batch: BatchBuilder | None = None
        self._used = _BATCH_OVERHEAD  # an upper bound of the open batch's size
        self._held: _Held | None = None
        self._sent: list[tuple[asyncio.Future[RecordMetadata], int]] = []
        self.written = 0  # records handed to `write` since the writer was made

    async def write(
        self,
        key: bytes | None,
        value: bytes | None,
        headers: Headers = (),
        ending: Ending | None = None,
    ) -> None:
        """Add one record; `ending` makes the headers it carries if it ends its batch. Sends
        the batch in hand first when the record does not fit after it."""
        listed = list(headers)  # the C batch builder takes only a list
        size = _RECORD_OVERHEAD + len(key or b"") + len(value or b"")
        for name, data in listed:
            size += _HEADER_OVERHEAD + len(name) * 4 + len(data)  # a str's UTF-8 at most 4×
        held, self._held = self._held, _Held(key, value, listed, ending, size)
        if held is not None:
            if self._used + held.size + size + ENDING_RESERVE <= self.batch_bytes:
                self._append(held, last=False)
            else:
                self._append(held, last=True)
                await self._send()
        self.written += 1

    async def flush(self) -> None:
        """Send the batch in hand (the producer's linger still applies)."""
        held, self._held = self._held, None
        if held is not None:
            self._append(held, last=True)
        await self._send()

    def _append(self, record: _Held, *, last: bool) -> None:
        headers = record.headers
        if last and record.ending is not None:
            ending = list(record.ending())
            if sum(_HEADER_OVERHEAD + len(k) * 4 + len(v) for k, v in ending) > ENDING_RESERVE:
                raise RecordTooLarge(f"ending headers over the {ENDING_RESERVE} bytes kept")
            headers = [*headers, *ending]
        if self._batch is None:
            self._batch = self.kafka.create_batch()
        appended = self._batch.append(
            key=record.key, value=record.value, timestamp=None, headers=headers
        )
        if appended is None:  # the bounds in `write` keep room for it: a bug, not bad input
            raise RuntimeError("a batch refused a record its bounds had room for")
        self._used += record.size

    async def _send(self) -> None:
        batch, self._batch = self._batch, None
        self._used = _BATCH_OVERHEAD
        if batch is not None and batch.record_count():
            raise_if_transaction_failed(self.kafka)
            future = await self.kafka.send_batch(batch, self.topic, partition=self.partition)
            self._sent.append((future, batch.record_count()))

    def abandon(self) -> None:
        """Forget the record held back, the batch in hand and what was sent, without waiting:
        for a transaction that failed or was fenced. The broker's answers are not looked at
        (nor logged by asyncio as exceptions never retrieved)."""
        sent, self._sent, self._batch, self._held = self._sent, [], None, None
        self._used = _BATCH_OVERHEAD
        for future, _ in sent:
            future.add_done_callback(_retrieve)

    async def acked_end(self) -> int | None:
        """Send what is in hand, wait until the broker has every batch sent so far, and return
        the offset after the last record of the last one (None when nothing was sent since the
        previous call). Raises what a failed send raised."""
        await self.flush()
        sent, self._sent = self._sent, []
        end = None
        for future, count in sent:
            metadata = await future
            end = metadata.offset + count
        return end


def raise_if_transaction_failed(kafka: AIOKafkaProducer) -> None:
    """Raise the error that ended the producer's transaction, if a transactional request of
    its sender failed (the producer fenced by a newer one, a broker error on adding a
    partition). aiokafka gives that error only to the futures of the batches in flight and
    leaves the transaction: its next send is refused with `IllegalOperation`, and its next
    begin or commit trips an assertion. Called before each of them, this raises the error
    itself (`ProducerFenced`, a `KafkaError`), which callers handle as a failed send."""
    error = transaction_error(kafka)
    if error is not None:
        raise error


def transaction_error(kafka: AIOKafkaProducer) -> KafkaError | None:
    """The error that ended the producer's transaction, or None while it stands. Asking marks
    it seen wherever aiokafka left it (the transaction's waiter, the drain waiters of the
    batches it failed), so that asyncio does not log it as never retrieved."""
    manager = kafka._txn_manager  # aiokafka keeps the state private
    if manager is None or manager.state not in _FAILED:
        return None
    accumulator = kafka._message_accumulator
    batches = [*accumulator._pending_batches, *chain.from_iterable(accumulator._batches.values())]
    waiters = [manager._transaction_waiter, *(batch._drain_waiter for batch in batches)]
    errors = [w.exception() for w in waiters if w is not None and w.done() and not w.cancelled()]
    error = errors[0] if errors else None
    return error if isinstance(error, KafkaError) else KafkaError("the transaction failed")


_FAILED = (TransactionState.ABORTABLE_ERROR, TransactionState.FATAL_ERROR)


def _retrieve(future: asyncio.Future[RecordMetadata]) -> None:
    if not future.cancelled():
        future.exception()

"""Which partition a task's records live in (`ytmaker_shared.topics.task_partition`): the partition
Kafka's default partitioner gives their key, the task id, as every ytmaker producer writes it."""

from __future__ import annotations

import pytest
from aiokafka.partitioner import DefaultPartitioner
from hypothesis import given
from hypothesis import strategies as st

from ytmaker_shared.topics import partition_by_key, task_partition

#: The Java client's own cases (`UtilsTest.testMurmur2`): key → `Utils.murmur2(key)`.
JAVA_MURMUR2 = {
    "21": -973932308,
    "foobar": -790332482,
    "a-little-bit-long-string": -985981536,
    "a-little-bit-longer-string": -1486304829,
    "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    "abc": 479470107,
}


@pytest.mark.parametrize("partitions", [1, 6, 7, 64])
@pytest.mark.parametrize("key", sorted(JAVA_MURMUR2))
def test_a_key_goes_where_the_java_client_puts_it(key: str, partitions: int) -> None:
    # Utils.toPositive(murmur2(key)) % partitions: the Java producer's default partitioner
    assert task_partition(key, partitions) == (JAVA_MURMUR2[key] & 0x7FFFFFFF) % partitions


@given(st.text(max_size=64), st.integers(min_value=1, max_value=100))
def test_a_task_goes_where_the_producers_partitioner_puts_its_key(
    task_id: str, partitions: int
) -> None:
    everyone = list(range(partitions))
    expected = DefaultPartitioner()(task_id.encode(), everyone, everyone)
    assert task_partition(task_id, partitions) == expected


@given(st.binary(max_size=200), st.integers(min_value=1, max_value=100))
def test_the_producers_partitioner_is_the_default_one(key: bytes, partitions: int) -> None:
    """`EventProducer`'s partitioner, murmur2 cached (keys up to 64 bytes), puts every key
    where aiokafka's `DefaultPartitioner` (and the Java client) would, asked once or again."""
    everyone = list(range(partitions))
    expected = DefaultPartitioner()(key, everyone, everyone)
    assert partition_by_key(key, everyone, everyone) == expected
    assert partition_by_key(key, everyone, everyone) == expected


def test_a_record_without_a_key_goes_to_an_available_partition() -> None:
    assert {partition_by_key(None, [0, 1, 2, 3], [2]) for _ in range(50)} == {2}
    assert {partition_by_key(None, [0, 1], []) for _ in range(200)} == {0, 1}

"""`ensure_topics`' wait for the coordinators, without a broker: the broker's mapping of a key
to a coordinator partition, and a cluster that refuses or never answers the lookups is left to
the clients (the wait gives up quietly, `ensure_topics` goes on). A new cluster's coordinators:
tests/integration/runtime/test_coordinators_ready.py."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from aiokafka.errors import GroupAuthorizationFailedError, GroupCoordinatorNotAvailableError

from ytmaker_shared.kafka.admin import _wait_for_coordinators, coordinator_partition


@pytest.mark.parametrize(
    ("key", "hash_code"),
    [  # String.hashCode() as Java 17 computes it
        ("ytmaker", -856563191),
        ("ytmaker-progress", 1929223537),
        ("héllo wörld €𝄞", 364363087),  # UTF-16: the clef is a surrogate pair
        ("polygenelubricants", -(2**31)),  # Utils.abs maps it to 0
    ],
)
def test_a_key_maps_to_the_coordinator_partition_the_broker_picks(key: str, hash_code: int) -> None:
    expected = 0 if hash_code == -(2**31) else abs(hash_code)
    for partitions in (1, 10, 50):
        assert coordinator_partition(key, partitions) == expected % partitions


class RefusingAdmin:
    """Answers every coordinator lookup with `error`; counts the lookups."""

    def __init__(self, error: type[Exception]) -> None:
        self.error = error
        self.lookups = 0

    async def find_coordinator(self, key: str, kind: int = 0) -> int:
        self.lookups += 1
        raise self.error()

    async def describe_topics(self, topics: list[str]) -> list[dict[str, Any]]:
        return [{"topic": topics[0], "partitions": [{"partition": p} for p in range(3)]}]


async def test_a_cluster_that_refuses_the_lookups_is_left_to_the_clients(
    caplog: pytest.LogCaptureFixture,
) -> None:
    admin = RefusingAdmin(GroupAuthorizationFailedError)  # not retriable: ACLs
    with caplog.at_level(logging.INFO, logger="ytmaker_shared.kafka.admin"):
        await _wait_for_coordinators(admin, timeout_s=5)  # type: ignore[arg-type]
    assert admin.lookups == 1
    assert "coordinators not checked" in caplog.text


async def test_a_cluster_whose_coordinators_never_answer_is_waited_for_until_the_deadline(
    caplog: pytest.LogCaptureFixture,
) -> None:
    admin = RefusingAdmin(GroupCoordinatorNotAvailableError)  # retriable, for ever
    with caplog.at_level(logging.WARNING, logger="ytmaker_shared.kafka.admin"):
        await _wait_for_coordinators(admin, timeout_s=0.5)  # type: ignore[arg-type]
    assert admin.lookups > 1  # asked again while waiting
    assert "coordinators not ready, services will retry" in caplog.text

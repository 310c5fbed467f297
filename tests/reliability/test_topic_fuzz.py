"""Hostile records on every topic a service consumes (topics.CONSUMED_BY), against the whole
system running as separate processes: every service stays alive, each bad record is in the
DLQ with its reason (or counted where its readers may not write), the next good run completes,
and a restart with the bad records still in the log comes up and completes a run.

Seeded: the seed is printed, and `YTMAKER_FUZZ_SEED=<seed>` repeats a run.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from tests.e2e.system import System, running_system
from tests.support.internal import internal_headers
from tests.support.topics import read_topic
from tests.support.wait import poll
from ytmaker_shared.kafka import DeadLetter, EventProducer
from ytmaker_shared.settings import ServiceSettings
from ytmaker_shared.topics import CONSUMED_BY, Topic

from .hostile import HostileRecord, hostile_records

pytestmark = [pytest.mark.kafka, pytest.mark.e2e]

SEED = int(os.environ.get("YTMAKER_FUZZ_SEED") or random.randrange(2**32))
PER_TOPIC = 8
CONSUMED = [topic for topic, readers in CONSUMED_BY.items() if readers]
#: Topics only group-less readers consume, or whose one reader must not write back: a bad
#: record there is counted (`ytmaker_records_skipped_total`), not dead-lettered.
COUNTED = {Topic.PROGRESS_UPDATES, Topic.PROGRESS_STATE}
SAMPLE = {
    "title": "Fuzzed",
    "content": "The tide comes in, and the tide goes out, twice a day.",
    "settings": {"segments": 1, "target_length_seconds": 10},
}


def _settings(system: System) -> ServiceSettings:
    return ServiceSettings(
        kafka_bootstrap_servers=system.env["KAFKA_BOOTSTRAP_SERVERS"],
        topic_prefix=system.env["YTMAKER_TOPIC_PREFIX"],
    )


@pytest.fixture
def system(kafka_bootstrap: str, tmp_path: Path) -> Iterator[System]:
    with running_system(kafka_bootstrap, tmp_path, "fuzz", YTMAKER_TOPIC_PARTITIONS="1") as running:
        yield running


def complete_a_run(system: System) -> str:
    """Start a project through the gateway and wait until its task completes."""
    with httpx.Client(base_url=system.base, timeout=20) as http:
        created = http.post("/api/v1/projects", json=SAMPLE)
        assert created.status_code == 201, created.text
        task_id = str(created.json()["task_id"])

        def completed() -> bool:
            system.check_alive()
            state = http.get(f"/api/v1/progress/{task_id}")
            return state.status_code == 200 and state.json()["status"] == "completed"

        poll(completed, timeout=180, what=f"run {task_id} to complete\n{system.log_tails()}")
    return task_id


def skipped(system: System) -> Counter[str]:
    """The progress service's `ytmaker_records_skipped_total`, per logical topic: its read
    side's and its fold's (which reads progress.state when it restores its lanes)."""
    prefix = system.env["YTMAKER_TOPIC_PREFIX"]
    out: Counter[str] = Counter()
    pattern = r'ytmaker_records_skipped_total\{[^}]*topic="([^"]+)"[^}]*\} ([0-9.e+]+)'
    for url in (system.progress, system.fold):
        text = httpx.get(f"{url}/metrics", timeout=10, headers=internal_headers()).text
        for topic, value in re.findall(pattern, text):
            out[topic.removeprefix(prefix)] += int(float(value))
    return out


async def produce(
    system: System, batches: dict[Topic, list[HostileRecord]]
) -> dict[Topic, list[tuple[int, int]]]:
    """Write every hostile record; where each landed (partition, offset)."""
    settings = _settings(system)
    out: dict[Topic, list[tuple[int, int]]] = {}
    async with EventProducer(settings, "fuzz") as producer:
        for topic, records in batches.items():
            for key, value, headers in records:
                meta = await producer.send_raw(
                    settings.topics.name(topic), key=key, value=value, headers=headers
                )
                out.setdefault(topic, []).append((meta.partition, meta.offset))
    return out


@seed(SEED)
@settings(
    max_examples=1,
    phases=[Phase.generate],  # one system run: no shrinking
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
@given(
    st.tuples(
        *(st.lists(hostile_records(t), min_size=PER_TOPIC, max_size=PER_TOPIC) for t in CONSUMED)
    )
)
def test_hostile_records_on_every_consumed_topic(
    system: System, generated: tuple[list[HostileRecord], ...]
) -> None:
    print(f"fuzz seed {SEED} (YTMAKER_FUZZ_SEED={SEED} repeats it)")
    written = asyncio.run(produce(system, dict(zip(CONSUMED, generated, strict=True))))

    complete_a_run(system)  # every consumer went past the bad records
    system.check_alive()
    records = asyncio.run(read_topic(_settings(system), Topic.DLQ))
    letters = {(d.topic, d.partition, d.offset): d for d in map(DeadLetter.from_record, records)}
    prefix = system.env["YTMAKER_TOPIC_PREFIX"]
    for topic, places in written.items():
        if topic in COUNTED:
            continue
        for partition, offset in places:
            letter = letters.get((prefix + topic.value, partition, offset))
            assert letter is not None, f"{topic} {partition}:{offset} is not in the DLQ"
            assert letter.reason and letter.detail
    counted = skipped(system)
    assert counted[Topic.PROGRESS_UPDATES.value] >= PER_TOPIC
    print(
        f"wrote {sum(map(len, written.values()))} hostile records on {len(written)} topics; "
        f"{len(letters)} dead letters; progress skipped {dict(counted)}"
    )

    system.stop_all()  # a restart with every bad record still in the log
    system.start_all()
    system.wait_ready(system.progress)
    system.wait_ready(system.base)
    complete_a_run(system)
    system.check_alive()
    assert skipped(system)[Topic.PROGRESS_STATE.value] >= PER_TOPIC  # read at the restore

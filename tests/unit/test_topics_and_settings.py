from __future__ import annotations

import pytest

from ytmaker_shared.settings import ServiceSettings
from ytmaker_shared.topics import CONSUMED_BY, TOPIC_SPECS, Topic, Topics


def test_every_topic_has_one_spec() -> None:
    assert sorted(spec.topic for spec in TOPIC_SPECS) == sorted(Topic)


def test_progress_state_is_compacted_and_kept() -> None:
    spec = next(s for s in TOPIC_SPECS if s.topic is Topic.PROGRESS_STATE)
    assert spec.config()["cleanup.policy"] == "compact"
    assert spec.config()["retention.ms"] == "-1"


def test_prefix_maps_both_ways() -> None:
    topics = Topics("t42.")
    assert topics.name(Topic.TASKS) == "t42.pipeline.tasks"
    assert topics.logical("t42.progress.updates") is Topic.PROGRESS_UPDATES
    with pytest.raises(ValueError, match="prefix"):
        topics.logical("other.pipeline.tasks")


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "10.0.0.1:9092")
    monkeypatch.setenv("YTMAKER_TOPIC_PREFIX", "x.")
    monkeypatch.setenv("YTMAKER_MAX_IN_FLIGHT", "7")
    settings = ServiceSettings()
    assert settings.kafka_bootstrap_servers == "10.0.0.1:9092"
    assert settings.topics.name(Topic.DLQ) == "x.pipeline.dlq"
    assert settings.max_in_flight == 7


def test_bad_settings_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("YTMAKER_MAX_IN_FLIGHT", "0")
    with pytest.raises(ValueError, match="max_in_flight"):
        ServiceSettings()


def test_every_topic_says_who_consumes_it() -> None:
    assert set(CONSUMED_BY) == set(Topic)
    services = {"script", "assets", "render", "upload", "progress", "gateway"}
    assert set().union(*CONSUMED_BY.values()) <= services

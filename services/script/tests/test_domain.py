"""The script schema and the offline writer."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from ytmaker_script.domain import (
    durations,
    group_sentences,
    offline_script,
    split_sentences,
)
from ytmaker_shared.events import ProjectSettings, TaskRequestedPayload
from ytmaker_shared.script import Script
from ytmaker_shared.stageworker import PermanentError

CONTENT = (
    "Apache Kafka is a distributed event log. Producers append events to topics, and every "
    "topic is split into partitions. Within a partition, events keep their order. Consumers "
    "in a group share the partitions of a topic between them. A consumer commits the offset "
    "of what it has processed. After a crash, it resumes from the last committed offset. "
    "Retention decides how long the log keeps events. Compacted topics keep the latest value "
    "per key."
)


def request(segments: int = 5, target: int = 60, content: str = CONTENT) -> TaskRequestedPayload:
    return TaskRequestedPayload(
        title="How Kafka keeps order",
        content=content,
        settings=ProjectSettings(segments=segments, target_length_seconds=target),
    )


def test_split_sentences() -> None:
    assert split_sentences("One.  Two!\nThree?\n\nFour") == ["One.", "Two!", "Three?", "Four"]
    assert split_sentences("   ") == []


def test_group_sentences_balances_and_keeps_order() -> None:
    sentences = split_sentences(CONTENT)
    groups = group_sentences(sentences, 5)
    assert len(groups) == 5
    assert [s for g in groups for s in g] == sentences
    assert all(groups)
    assert group_sentences(["Only one."], 5) == [["Only one."]]


def test_durations_follow_words_and_target() -> None:
    times = durations(["one two three four five", "one two three four five six seven eight"], 60)
    assert times[1] > times[0]
    assert sum(times) == pytest.approx(60, abs=0.1)
    fast = durations(["word " * 300], 10)  # never faster than it can be spoken
    assert fast[0] >= 120 or fast[0] == 120.0


def test_offline_script_uses_the_real_sentences() -> None:
    script = offline_script(request())
    assert len(script.segments) == 5
    narration = " ".join(s.narration for s in script.segments)
    assert narration == " ".join(split_sentences(CONTENT))
    assert script.segments[0].caption.startswith("Apache Kafka is a distributed event log")
    assert all(len(s.caption) <= 80 for s in script.segments)
    assert script.duration_seconds == pytest.approx(60, abs=0.5)
    assert "kafka" in " ".join(script.tags).lower() or "partition" in " ".join(script.tags)
    assert "documentary" in script.segments[0].image_prompt
    assert offline_script(request()) == script  # deterministic


def test_offline_script_keeps_what_fits_the_target_length() -> None:
    long = " ".join(f"Sentence number {i} tells one more thing about logs." for i in range(200))
    script = offline_script(request(segments=5, target=60, content=long))
    spoken = sum(len(s.narration.split()) for s in script.segments)
    assert 100 <= spoken <= 150  # about 60 s at 2.5 words per second
    assert script.segments[0].narration.startswith("Sentence number 0 ")
    assert 55 <= script.duration_seconds <= 65


def test_offline_script_with_fewer_sentences_than_segments() -> None:
    script = offline_script(request(segments=10, content="A single sentence about logs."))
    assert len(script.segments) == 1 and script.segments[0].duration_seconds >= 3


def test_schema_rejects_bad_scripts() -> None:
    good = offline_script(request(segments=2)).model_dump()
    Script.model_validate(good)
    for broken in (
        {**good, "segments": []},
        {**good, "title": ""},
        {**good, "segments": [{**good["segments"][0], "index": 2}]},
        {**good, "segments": [{**good["segments"][0], "duration_seconds": 0}]},
        {**good, "segments": [{**good["segments"][0], "narration": "   "}]},
    ):
        with pytest.raises(ValidationError):
            Script.model_validate(broken)


def payload(title: str, content: str, segments: int, target: int) -> TaskRequestedPayload:
    return TaskRequestedPayload(
        title=title,
        content=content,
        settings=ProjectSettings(segments=segments, target_length_seconds=target),
    )


@pytest.mark.parametrize(
    ("content", "segments", "target"),
    [
        # a valid project: one segment of half an hour of text
        (" ".join(f"Sentence {i} tells one more thing about logs." for i in range(2000)), 1, 1800),
        ("word " * 3000, 3, 600),  # no sentence ends at all
        ("a" * 3000 + ". Then a short one.", 2, 60),  # one word longer than an image prompt
    ],
)
def test_offline_script_keeps_every_segment_within_the_contract(
    content: str, segments: int, target: int
) -> None:
    script = offline_script(payload("Logs", content, segments, target))
    assert 1 <= len(script.segments) <= segments
    assert all(len(s.narration) <= 5000 and len(s.image_prompt) <= 1000 for s in script.segments)


def test_offline_script_refuses_a_project_with_nothing_to_say() -> None:
    with pytest.raises(PermanentError) as caught:
        offline_script(payload(" \u200b", "\t \n\n ", 3, 60))
    assert caught.value.code == "invalid_request"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    title=st.text(min_size=1, max_size=200),
    content=st.text(min_size=1, max_size=3000)
    | st.builds(lambda w, n: (w + " ") * n, st.text(min_size=1, max_size=40), st.integers(1, 400)),
    segments=st.integers(1, 50),
    target=st.integers(10, 1800),
)
def test_offline_writer_gives_a_valid_script_or_a_clear_refusal(
    title: str, content: str, segments: int, target: int
) -> None:
    """Any text a user can send: a script within the contract, or `invalid_request`."""
    try:
        script = offline_script(payload(title, content, segments, target))
    except PermanentError as exc:
        assert exc.code == "invalid_request"
        return
    Script.model_validate(script.model_dump())  # what assets and render read back
    assert len(script.segments) <= segments

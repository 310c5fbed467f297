"""Metadata to YouTube's limits and the arithmetic of the resumable protocol."""

from __future__ import annotations

import random
import re
import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ytmaker_upload.domain import (
    CHUNK_UNIT,
    TAGS_MAX_CHARS,
    MetadataError,
    VideoMetadata,
    backoff_delay,
    chunk_size,
    clean_tags,
    clean_text,
    content_range,
    metadata_from_script,
    next_chunk,
    stored_bytes,
    upload_marker,
)


def test_metadata_comes_from_the_script_cleaned_to_youtubes_limits() -> None:
    meta = metadata_from_script(
        {
            "title": "  <b>Tides</b>  explained ",
            "description": "Line one\n\n<i>two</i>",
            "tags": ["sea", "Sea", "moon, tides"],
        },
        privacy="unlisted",
        extra_tags=["science"],
        language="en",
    )
    assert meta.title == "bTides/b explained"
    assert meta.description == "Line one\n\nitwo/i"
    assert meta.tags == ("sea", "moon tides", "science")
    resource = meta.resource()
    assert resource["status"] == {"privacyStatus": "unlisted", "selfDeclaredMadeForKids": False}
    assert resource["snippet"]["defaultLanguage"] == "en"


def test_long_titles_and_descriptions_are_cut_within_the_limits() -> None:
    meta = metadata_from_script({"title": "word " * 40, "description": "é" * 4000})
    assert len(meta.title) <= 100 and meta.title.endswith("…")
    assert len(meta.description.encode()) <= 5000


def test_tags_stay_within_500_characters_counting_quotes() -> None:
    tags = clean_tags([f"tag number {i}" for i in range(100)])
    assert sum(len(t) + 2 for t in tags) + len(tags) - 1 <= 500
    assert len(tags) > 10


def test_no_title_anywhere_is_an_error_but_a_fallback_title_is_used() -> None:
    with pytest.raises(MetadataError):
        metadata_from_script({"title": "<>"})
    assert metadata_from_script({}, fallback_title="Project").title == "Project"


def test_chunks_are_256k_multiples_and_the_last_one_is_short() -> None:
    assert chunk_size(1) == CHUNK_UNIT and chunk_size(3 * CHUNK_UNIT + 5) == 3 * CHUNK_UNIT
    assert next_chunk(0, 10 * CHUNK_UNIT, 4 * CHUNK_UNIT) == (0, 4 * CHUNK_UNIT - 1)
    assert next_chunk(8 * CHUNK_UNIT, 10 * CHUNK_UNIT + 3, 4 * CHUNK_UNIT) == (
        8 * CHUNK_UNIT,
        10 * CHUNK_UNIT + 2,
    )
    assert content_range(0, 9, 10) == "bytes 0-9/10"
    with pytest.raises(ValueError):
        next_chunk(10, 10, CHUNK_UNIT)


def test_the_range_of_a_308_says_how_many_bytes_are_stored() -> None:
    assert stored_bytes(None) == 0 and stored_bytes("") == 0
    assert stored_bytes("bytes=0-262143") == CHUNK_UNIT
    with pytest.raises(ValueError):
        stored_bytes("bytes=5-10")


def test_backoff_grows_exponentially_with_jitter_and_a_cap() -> None:
    rng = random.Random(7)
    for attempt, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (10, 32.0)]:
        delays = [backoff_delay(attempt, rng=rng) for _ in range(50)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 1


@given(st.text(), st.text(), st.lists(st.text(), max_size=40))
def test_any_text_is_cleaned_to_what_youtube_takes(
    title: str, description: str, tags: list[str]
) -> None:
    try:
        meta = metadata_from_script({"title": title, "description": description, "tags": tags})
    except MetadataError:
        assert not clean_text(title)
        return
    for text, allowed in [
        (meta.title, ""),
        (meta.description, "\n"),
        *((t, "") for t in meta.tags),
    ]:
        assert "<" not in text and ">" not in text
        assert not [c for c in text if unicodedata.category(c) == "Cc" and c not in allowed]
    assert 1 <= len(meta.title) <= 100
    assert len(meta.description.encode()) <= 5000


def test_the_marker_is_kept_first_within_the_tag_budget_and_says_nothing_of_the_task() -> None:
    full = VideoMetadata(title="t", tags=tuple(f"tag{n:03d}" for n in range(80)))  # 559 chars
    marker = upload_marker("tasks, like this one, may hold commas")
    tags = full.marked(marker).tags
    assert tags[0] == marker and re.fullmatch(r"ytmaker-[0-9a-f]{32}", marker)
    assert len(",".join(tags)) <= TAGS_MAX_CHARS and tags[1:] == full.tags[: len(tags) - 1]
    assert upload_marker("a") != upload_marker("b")

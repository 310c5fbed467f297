"""Captions from any narration text: every line fits the band, no text is lost, drawing never
fails, and the cost grows gently with the length of the text."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from ytmaker_render.captions import (
    BAND_FONT,
    BAND_HEIGHT,
    MARGIN,
    caption_lines,
    draw_band,
    draw_thumbnail,
    font,
    wrap,
)
from ytmaker_render.timeline import HEIGHT, WIDTH

NARRATION_MAX = 5000  # ytmaker_shared.script.Segment.narration

hostile = st.one_of(
    st.text(max_size=300),
    st.text(alphabet="W\u05d0\u0627\u0301\U0001f600:;\\'\"[]%,=\n\t\x00", max_size=300),
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=hostile)
def test_any_narration_becomes_lines_that_fit_and_keep_every_character(
    tmp_path: Path, text: str
) -> None:
    lines = caption_lines(text)
    face = font(BAND_FONT)
    assert all(face.getlength(line) <= WIDTH - 2 * MARGIN or len(line) == 1 for line in lines)
    assert "".join("".join(lines).split()) == "".join(text.split())
    for n, line in enumerate(lines[:3]):
        with Image.open(draw_band(line, tmp_path / f"band{n}.png")) as band:
            assert band.size == (WIDTH, BAND_HEIGHT) and band.mode == "RGBA"


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(title=hostile)
def test_any_title_draws_a_thumbnail(tmp_path: Path, title: str) -> None:
    with Image.open(draw_thumbnail(None, title, tmp_path / "t.jpg")) as thumb:
        assert thumb.size == (WIDTH, HEIGHT)


def test_the_longest_narration_without_spaces_is_cut_with_few_measurements() -> None:
    """Cutting a word shorter from its end measured O(n) prefixes per line (a 5,000-character
    word took ~90 s); bisection measures O(log n). Counted, not timed."""
    face = font(BAND_FONT)
    measured = 0

    class Counting:
        def getlength(self, text: str) -> float:
            nonlocal measured
            measured += 1
            return face.getlength(text)

    lines = wrap("W" * NARRATION_MAX, Counting(), WIDTH - 2 * MARGIN)  # type: ignore[arg-type]
    assert "".join(lines) == "W" * NARRATION_MAX
    assert all(face.getlength(line) <= WIDTH - 2 * MARGIN for line in lines)
    assert measured < NARRATION_MAX  # the old loop: ~600,000


def test_a_first_slide_pillow_cannot_read_gives_a_plain_thumbnail(
    tmp_path: Path, media: Any
) -> None:
    clip = media.clip(tmp_path / "slide.mp4", 1).rename(tmp_path / "img1")  # ffmpeg reads it
    truncated = tmp_path / "truncated.png"
    media.slide(tmp_path / "whole.png", 10)
    truncated.write_bytes((tmp_path / "whole.png").read_bytes()[:200])
    for background in (clip, truncated):
        target = tmp_path / f"thumb-{background.name}.jpg"
        with Image.open(draw_thumbnail(background, "Tides", target)) as thumb:
            assert thumb.size == (WIDTH, HEIGHT)

"""Segment timing: narration drives the slots, cross-fades keep pictures and words in step."""

from __future__ import annotations

import pytest

from ytmaker_render.timeline import (
    FPS,
    SegmentTiming,
    caption_windows,
    plan_timeline,
    segment_seconds,
)


def test_a_segment_lasts_its_narration_plus_the_pause_in_whole_frames() -> None:
    seconds = segment_seconds(
        SegmentTiming(0, script_seconds=9.0, narration_seconds=4.01), pause=0.35, min_seconds=2
    )
    assert seconds == round(4.36 * FPS) / FPS


def test_without_narration_the_script_duration_is_used_and_short_ones_are_stretched() -> None:
    assert segment_seconds(SegmentTiming(0, 7.0), pause=0.35, min_seconds=2) == 7.0
    assert segment_seconds(SegmentTiming(0, 7.0, 0.2), pause=0.3, min_seconds=2) == 2.0


def test_slots_follow_each_other_and_every_clip_but_the_last_overlaps_by_the_fade() -> None:
    timeline = plan_timeline(
        [SegmentTiming(i, 10.0, n) for i, n in enumerate([3.0, 5.6, 2.0])], fade=0.5, pause=0.0
    )
    starts = [slot.start for slot in timeline.slots]
    assert starts == pytest.approx([0.0, 3.0, 8.6])
    assert [s.clip_seconds - s.seconds for s in timeline.slots] == pytest.approx([0.5, 0.5, 0])
    assert timeline.total_seconds == pytest.approx(10.6)
    # The xfade chain's length is the sum of the clips minus the overlaps: the total.
    clips = sum(s.clip_seconds for s in timeline.slots)
    assert clips - 2 * timeline.fade_seconds == pytest.approx(timeline.total_seconds)


def test_segments_are_ordered_by_index_whatever_order_they_arrive_in() -> None:
    timeline = plan_timeline([SegmentTiming(2, 3.0), SegmentTiming(0, 4.0), SegmentTiming(1, 5.0)])
    assert [s.index for s in timeline.slots] == [0, 1, 2]
    assert timeline.slots[1].start == pytest.approx(4.0)


def test_bad_plans_are_refused_with_a_reason() -> None:
    with pytest.raises(ValueError, match="at least one segment"):
        plan_timeline([])
    with pytest.raises(ValueError, match="shorter than min_seconds"):
        plan_timeline([SegmentTiming(0, 3.0)], fade=2.0, min_seconds=2.0)


def test_caption_lines_share_the_narration_by_length_and_the_last_stays_to_the_end() -> None:
    windows = caption_windows(["a" * 30, "b" * 10], narration_seconds=4.0, slot_seconds=5.0)
    assert windows == [(0.0, 3.0), (3.0, 5.0)]
    assert caption_windows([], 4.0, 5.0) == []
    # Without narration, the lines share the whole slot.
    assert caption_windows(["x", "y"], None, 4.0) == [(0.0, 2.0), (2.0, 4.0)]

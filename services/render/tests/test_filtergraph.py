"""The pure ffmpeg command builder."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ytmaker_render.filtergraph import (
    AvatarClip,
    Caption,
    FfmpegCommand,
    SegmentMedia,
    build_command,
    caption_runs,
    zoom_expression,
)
from ytmaker_render.timeline import FPS, SegmentTiming, plan_timeline

TIMELINE = plan_timeline([SegmentTiming(i, 5.0, 4.0) for i in range(3)], fade=0.5, pause=0.0)
MEDIA = [
    SegmentMedia(
        i,
        Path(f"/m/img{i}.png"),
        (Caption(Path(f"/m/cap{i}.png"), 0.0, 4.0),),
        Path(f"/m/n{i}.wav"),
    )
    for i in range(3)
]


BLANK = Path("/m/blank.png")


def option(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def inputs_of(cmd: FfmpegCommand) -> list[str]:
    return [cmd.args[i + 1] for i, a in enumerate(cmd.args) if a == "-i"]


def test_inputs_are_numbered_in_the_order_the_graph_uses_them() -> None:
    cmd = build_command("ffmpeg", TIMELINE, MEDIA, Path("/out/v.mp4"), blank_caption=BLANK)
    assert inputs_of(cmd)[:3] == ["/m/img0.png", "/out/v-captions-000.ffconcat", "/m/n0.wav"]
    assert "[0:v]scale=1280:720" in cmd.filtergraph
    assert "[1:v]format=rgba[k0]" in cmd.filtergraph
    assert "[z0][k0]overlay=0:main_h-overlay_h" in cmd.filtergraph
    assert "[2:a]aformat=" in cmd.filtergraph


def captioned(lines: int, seconds: float = 30.0) -> FfmpegCommand:
    """One segment whose `lines` captions share its whole slot, as the stage times them."""
    step = seconds / lines
    captions = tuple(
        Caption(Path(f"/c/line{n}.png"), round(n * step, 3), round((n + 1) * step, 3))
        for n in range(lines)
    )
    return build_command(
        "ffmpeg",
        plan_timeline([SegmentTiming(0, seconds)]),
        [SegmentMedia(0, Path("/m/i.png"), captions, Path("/m/n.wav"))],
        Path("/o.mp4"),
    )


def test_a_segments_inputs_and_filters_do_not_grow_with_its_caption_lines() -> None:
    """Each line was an input and an overlay: a long narration made thousands of them."""
    few, many = captioned(3), captioned(300)
    assert len(inputs_of(many)) == len(inputs_of(few)) == 3  # slide, captions, narration
    assert many.filtergraph.count("overlay=") == few.filtergraph.count("overlay=") == 1
    assert len(many.filtergraph.split(";")) == len(few.filtergraph.split(";"))
    assert len(many.args) == len(few.args)


def test_a_segments_captions_are_one_concat_track_of_whole_frames() -> None:
    captions = (Caption(Path("/c/a.png"), 0.0, 1.5), Caption(Path("/c/it's b.png"), 1.5, 4.0))
    media = [SegmentMedia(0, Path("/m/i.png"), captions, None), *MEDIA[1:]]
    cmd = build_command("ffmpeg", TIMELINE, media, Path("/o/v.mp4"), blank_caption=BLANK)
    listing = Path("/o/v-captions-000.ffconcat")
    assert option(cmd.args, "-i") == "/m/i.png"
    assert cmd.args[cmd.args.index(str(listing)) - 5 :][:5] == ["-f", "concat", "-safe", "0", "-i"]
    assert "[z0][k0]overlay=0:main_h-overlay_h:format=auto:eof_action=repeat," in cmd.filtergraph
    assert "enable=" not in cmd.filtergraph
    # Clip 0 is 135 frames (4 s + the 0.5-s cross-fade into segment 1): a on frames 0-44,
    # b from frame 45 (1.5 s) to frame 120 (4 s, as `between` took it), blank in the fade.
    # The last entry is not listed again: its frame would lengthen the clip by one.
    assert cmd.files[listing] == (
        "ffconcat version 1.0\n"
        "file 'file:/c/a.png'\noption framerate 30\nduration 1.500000\n"
        "file 'file:/c/it'\\''s b.png'\noption framerate 30\nduration 2.533333\n"
        "file 'file:/m/blank.png'\noption framerate 30\nduration 0.466667\n"
    )
    assert sorted(cmd.files) == [listing, *(Path(f"/o/v-captions-00{i}.ffconcat") for i in (1, 2))]


@given(
    windows=st.lists(
        st.tuples(st.floats(-1, 5, allow_nan=False), st.floats(0, 6, allow_nan=False)),
        max_size=8,
    ),
    frames=st.integers(1, 150),
)
def test_each_frame_shows_the_caption_the_old_overlays_showed_on_top(
    windows: list[tuple[float, float]], frames: int
) -> None:
    """One overlay per caption showed it where `between(t,start,end)`, t = n * (1/FPS), the
    later ones over the earlier ones: the track shows that topmost caption on each frame."""
    captions = [
        Caption(Path(f"/c/{n}.png"), round(a, 3), round(b, 3)) for n, (a, b) in enumerate(windows)
    ]
    expected = [
        next(
            (c.path for c in reversed(captions) if c.start <= n * (1 / FPS) <= c.end),
            None,
        )
        for n in range(frames)
    ]
    runs = caption_runs(captions, frames)
    assert [band for band, count in runs for _ in range(count)] == expected
    assert all(count > 0 for _, count in runs)
    assert all(a[0] != b[0] for a, b in itertools.pairwise(runs))


def test_caption_tracks_refuse_what_they_cannot_list() -> None:
    with pytest.raises(ValueError, match="need a blank band"):
        build_command("ffmpeg", TIMELINE, MEDIA, Path("/o.mp4"))  # the cross-fades are blank
    broken = [SegmentMedia(0, Path("/m/i.png"), (Caption(Path("/c/a\n.png"), 0, 9),), None)]
    with pytest.raises(ValueError, match="line break"):
        build_command("ffmpeg", plan_timeline([SegmentTiming(0, 4.0)]), broken, Path("/o.mp4"))


def test_crossfades_start_where_the_next_narration_starts() -> None:
    cmd = build_command("ffmpeg", TIMELINE, MEDIA, Path("/out/v.mp4"), blank_caption=BLANK)
    assert "[v0][v1]xfade=transition=fade:duration=0.500000:offset=4.000000[x1]" in cmd.filtergraph
    assert "[x1][v2]xfade=transition=fade:duration=0.500000:offset=8.000000[x2]" in cmd.filtergraph
    assert "[x2]format=yuv420p[vout]" in cmd.filtergraph
    assert "[a0][a1][a2]concat=n=3:v=0:a=1[aout]" in cmd.filtergraph


def test_each_slide_zooms_for_its_whole_clip_alternating_in_and_out() -> None:
    cmd = build_command("ffmpeg", TIMELINE, MEDIA, Path("/out/v.mp4"), blank_caption=BLANK)
    assert f"zoompan=z='{zoom_expression(135, 0.08, zoom_in=True)}'" in cmd.filtergraph
    assert ":d=135:s=1280x720:fps=30" in cmd.filtergraph  # 4.5 s clip = 4 s slot + fade
    assert "z='1.08-0.08*on/134'" in cmd.filtergraph  # the second one zooms out
    assert ":d=120:s=1280x720" in cmd.filtergraph  # the last clip has no fade after it


def test_output_is_h264_aac_720p30_faststart_for_exactly_the_timeline() -> None:
    cmd = build_command("ffmpeg", TIMELINE, MEDIA, Path("/out/v.mp4"), blank_caption=BLANK)
    assert option(cmd.args, "-c:v") == "libx264"
    assert option(cmd.args, "-c:a") == "aac"
    assert option(cmd.args, "-r") == "30"
    assert option(cmd.args, "-pix_fmt") == "yuv420p"
    assert option(cmd.args, "-movflags") == "+faststart"
    assert option(cmd.args, "-progress") == "pipe:1"
    assert option(cmd.args, "-t") == "12.000"
    assert cmd.args[-1] == "/out/v.mp4" and cmd.duration_seconds == 12.0


def test_missing_caption_and_narration_give_a_bare_slide_and_silence() -> None:
    media = [SegmentMedia(0, Path("/m/a.png"))]
    timeline = plan_timeline([SegmentTiming(0, 6.0)])
    cmd = build_command("ffmpeg", timeline, media, Path("/o.mp4"))
    assert "overlay" not in cmd.filtergraph and "xfade" not in cmd.filtergraph
    assert cmd.files == {}
    assert "anullsrc=r=44100:cl=stereo,atrim=duration=6.000000" in cmd.filtergraph
    assert "[z0]format=yuv420p[vout]" in cmd.filtergraph


def test_avatar_clips_go_in_the_corner_from_their_start() -> None:
    cmd = build_command(
        "ffmpeg",
        TIMELINE,
        MEDIA,
        Path("/o.mp4"),
        avatars=[AvatarClip(Path("/m/av.mp4"), 4.0)],
        blank_caption=BLANK,
    )
    assert "[9:v]scale=320:-2,fps=30,setpts=PTS-STARTPTS+4.000000/TB[av0]" in cmd.filtergraph
    assert "[x2][av0]overlay=main_w-overlay_w-24:24:eof_action=pass" in cmd.filtergraph


def test_media_must_match_the_timeline() -> None:
    with pytest.raises(ValueError, match="one media entry each"):
        build_command("ffmpeg", TIMELINE, MEDIA[:2], Path("/o.mp4"))

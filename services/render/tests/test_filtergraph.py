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
    runs_between,
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


def inputs_of(args: list[str]) -> list[str]:
    return [args[i + 1] for i, a in enumerate(args) if a == "-i"]


def graph_of(args: list[str]) -> str:
    return option(args, "-filter_complex")


def test_inputs_are_numbered_in_the_order_the_graphs_use_them() -> None:
    cmd = build_command("ffmpeg", TIMELINE, MEDIA, Path("/out/v.mp4"), blank_caption=BLANK)
    assert inputs_of(cmd.args) == ["pipe:0", "/m/n0.wav", "/m/n1.wav", "/m/n2.wav"]
    assert "[0:v]setsar=1[video]" in cmd.filtergraph
    assert "[1:a]aformat=" in cmd.filtergraph
    # Slot 1: the end of clip 0 (from its frame 120), then clip 1, each under its captions.
    second = cmd.pieces[1]
    assert inputs_of(second) == [
        "/m/img0.png",
        "/out/v-captions-000-0120.ffconcat",
        "/m/img1.png",
        "/out/v-captions-001-0000.ffconcat",
    ]
    assert "[0:v]scale=1280:720" in graph_of(second)
    assert "[1:v]format=rgba[k0]" in graph_of(second)
    assert "[z0][k0]overlay=0:main_h-overlay_h" in graph_of(second)
    assert "[2:v]scale=1280:720" in graph_of(second)
    assert "[z1][k1]overlay=0:main_h-overlay_h" in graph_of(second)


def test_no_ffmpeg_gets_more_slides_or_inputs_as_segments_grow() -> None:
    """One graph of every segment kept every clip's buffers to its end: 1.6 GiB of ffmpeg for
    fifty segments (decision 0130). Each slot is now an ffmpeg of its own with at most two
    slides, the encoder has none, and they run one after another beside the encoder."""
    for count in (2, 50):
        timeline = plan_timeline([SegmentTiming(i, 5.0, 4.0) for i in range(count)], fade=0.5)
        media = [
            SegmentMedia(i, Path(f"/m/img{i}.png"), (Caption(Path("/m/c.png"), 0, 4),))
            for i in range(count)
        ]
        cmd = build_command("ffmpeg", timeline, media, Path("/o/v.mp4"), blank_caption=BLANK)
        assert len(cmd.pieces) == count
        assert max(len(inputs_of(piece)) for piece in cmd.pieces) == 4  # 2 slides, 2 tracks
        assert max(graph_of(piece).count("zoompan=") for piece in cmd.pieces) == 2
        assert inputs_of(cmd.args) == ["pipe:0"]  # these segments have no narration
        assert "zoompan" not in cmd.filtergraph and "xfade" not in cmd.filtergraph


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
    (few_piece,), (many_piece,) = few.pieces, many.pieces
    assert len(inputs_of(many_piece)) == len(inputs_of(few_piece)) == 2  # slide, captions
    assert len(inputs_of(many.args)) == len(inputs_of(few.args)) == 2  # frames, narration
    assert graph_of(many_piece).count("overlay=") == graph_of(few_piece).count("overlay=") == 1
    assert len(graph_of(many_piece).split(";")) == len(graph_of(few_piece).split(";"))
    assert len(many_piece) == len(few_piece) and len(many.args) == len(few.args)


def test_a_segments_captions_are_one_concat_track_of_whole_frames() -> None:
    captions = (Caption(Path("/c/a.png"), 0.0, 1.5), Caption(Path("/c/it's b.png"), 1.5, 4.0))
    media = [SegmentMedia(0, Path("/m/i.png"), captions, None), *MEDIA[1:]]
    cmd = build_command("ffmpeg", TIMELINE, media, Path("/o/v.mp4"), blank_caption=BLANK)
    own, fading = Path("/o/v-captions-000-0000.ffconcat"), Path("/o/v-captions-000-0120.ffconcat")
    first, second = cmd.pieces[:2]
    assert option(first, "-i") == "/m/i.png"
    assert first[first.index(str(own)) - 5 :][:5] == ["-f", "concat", "-safe", "0", "-i"]
    assert second[second.index(str(fading)) - 5 :][:5] == ["-f", "concat", "-safe", "0", "-i"]
    assert "[z0][k0]overlay=0:main_h-overlay_h:format=auto:eof_action=repeat," in graph_of(first)
    assert not any("enable=" in graph_of(piece) for piece in cmd.pieces)
    # Clip 0 is 135 frames (4 s + the 0.5-s cross-fade into segment 1): a on frames 0-44,
    # b from frame 45 (1.5 s) to frame 120 (4 s, as `between` took it), blank in the fade.
    # Slot 0 shows frames 0-119, slot 1 fades out of frames 120-134: one listing each.
    # The last entry is not listed again: its frame would lengthen the clip by one.
    assert cmd.files[own] == (
        "ffconcat version 1.0\n"
        "file 'file:/c/a.png'\noption framerate 30\nduration 1.500000\n"
        "file 'file:/c/it'\\''s b.png'\noption framerate 30\nduration 2.500000\n"
    )
    assert cmd.files[fading] == (
        "ffconcat version 1.0\n"
        "file 'file:/c/it'\\''s b.png'\noption framerate 30\nduration 0.033333\n"
        "file 'file:/m/blank.png'\noption framerate 30\nduration 0.466667\n"
    )
    assert sorted(cmd.files) == [
        Path(f"/o/v-captions-00{i}-{first:04d}.ffconcat")
        for i, first in [(0, 0), (0, 120), (1, 0), (1, 120), (2, 0)]
    ]


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


@given(
    runs=st.lists(st.tuples(st.sampled_from([None, Path("/c/a.png")]), st.integers(1, 20))),
    first=st.integers(0, 200),
    count=st.integers(0, 200),
)
def test_a_part_of_a_track_shows_what_the_whole_track_shows_on_those_frames(
    runs: list[tuple[Path | None, int]], first: int, count: int
) -> None:
    frames = [band for band, length in runs for _ in range(length)]
    part = runs_between(runs, first, count)
    assert [band for band, length in part for _ in range(length)] == frames[first:][:count]
    assert all(length > 0 for _, length in part)


def test_caption_tracks_refuse_what_they_cannot_list() -> None:
    with pytest.raises(ValueError, match="need a blank band"):
        build_command("ffmpeg", TIMELINE, MEDIA, Path("/o.mp4"))  # the cross-fades are blank
    broken = [SegmentMedia(0, Path("/m/i.png"), (Caption(Path("/c/a\n.png"), 0, 9),), None)]
    with pytest.raises(ValueError, match="line break"):
        build_command("ffmpeg", plan_timeline([SegmentTiming(0, 4.0)]), broken, Path("/o.mp4"))


def test_crossfades_start_where_the_next_narration_starts() -> None:
    """Slot k's frames start where its narration does, with the cross-fade into its clip."""
    cmd = build_command("ffmpeg", TIMELINE, MEDIA, Path("/out/v.mp4"), blank_caption=BLANK)
    first, second, third = (graph_of(piece) for piece in cmd.pieces)
    assert "xfade" not in first
    fade = "[a][b]xfade=transition=fade:duration=0.500000:offset=0[faded]"
    assert fade in second and fade in third
    # Each slot is its own frames: 4 s each, 12 s in all
    assert [":d=120:" in graph for graph in (first, second, third)] == [True] * 3
    assert "[a0][a1][a2]concat=n=3:v=0:a=1[aout]" in cmd.filtergraph


def test_each_slide_zooms_for_its_whole_clip_alternating_in_and_out() -> None:
    cmd = build_command("ffmpeg", TIMELINE, MEDIA, Path("/out/v.mp4"), blank_caption=BLANK)
    first, second, third = (graph_of(piece) for piece in cmd.pieces)
    # Clip 0 is 135 frames (4.5 s = 4 s slot + fade): 120 in slot 0, the last 15 in slot 1
    assert f"z='{zoom_expression(135, 0.08, zoom_in=True)}'" in first
    assert "z='1+0.08*on/134':x='iw/2-(iw/zoom/2)':y='ih/2-(ih/zoom/2)':d=120:" in first
    assert "z='1+0.08*(on+120)/134':x='iw/2-(iw/zoom/2)':y='ih/2-(ih/zoom/2)':d=15:" in second
    assert "z='1.08-0.08*on/134':x='iw/2-(iw/zoom/2)':y='ih/2-(ih/zoom/2)':d=120:" in second
    assert "z='1.08-0.08*(on+120)/134'" in third and ":d=15:" in third  # the second zooms out
    assert "z='1+0.08*on/119'" in third  # the last clip has no fade after it


def test_a_clips_part_is_zoomed_as_those_frames_of_the_whole_clip() -> None:
    assert zoom_expression(135, 0.08, zoom_in=True, first=120) == "1+0.08*(on+120)/134"
    assert zoom_expression(135, 0.08, zoom_in=False, first=120) == "1.08-0.08*(on+120)/134"
    assert zoom_expression(135, 0.08, zoom_in=True, first=0) == "1+0.08*on/134"


@pytest.mark.parametrize(
    ("fade", "avatars", "frames", "under_avatars"),
    [
        (0.5, (), "yuv420p", None),
        (0.0, (), "yuv420p", None),
        (0.5, (AvatarClip(Path("/m/av.mp4")),), "yuv444p", "yuva444p"),
        (0.0, (AvatarClip(Path("/m/av.mp4")),), "yuv420p", "yuva420p"),
    ],
)
def test_the_frames_reach_the_encoder_as_the_one_graph_had_them(
    fade: float, avatars: tuple[AvatarClip, ...], frames: str, under_avatars: str | None
) -> None:
    """Cross-fades ran in yuv444p, ffmpeg's choice for the one graph's `xfade` chain, and the
    avatars were overlaid on that with an alpha plane: the same conversions, the same pixels."""
    timeline = plan_timeline([SegmentTiming(i, 5.0, 4.0) for i in range(3)], fade=fade)
    cmd = build_command(
        "ffmpeg", timeline, MEDIA, Path("/o.mp4"), avatars=avatars, blank_caption=BLANK
    )
    for piece in cmd.pieces:
        assert graph_of(piece).endswith(f"format={frames}[frames]")
        assert piece[-4:] == ["[frames]", "-f", "rawvideo", "pipe:1"]
        assert ("format=yuv444p[" in graph_of(piece)) == (fade > 0)
    assert cmd.args[cmd.args.index("pipe:0") - 9 :][:10] == [
        *("-f", "rawvideo", "-pix_fmt", frames),
        *("-video_size", "1280x720", "-framerate", "30", "-i", "pipe:0"),
    ]
    alpha = f",format={under_avatars}" if under_avatars else ""
    assert f"[0:v]setsar=1{alpha}[video]" in cmd.filtergraph


def test_output_is_h264_aac_720p30_faststart_for_exactly_the_timeline() -> None:
    cmd = build_command("ffmpeg", TIMELINE, MEDIA, Path("/out/v.mp4"), blank_caption=BLANK)
    assert option(cmd.args, "-c:v") == "libx264"
    assert option(cmd.args, "-c:a") == "aac"
    assert option(cmd.args, "-r") == "30"
    assert cmd.args[cmd.args.index("-c:v") :].count("yuv420p") == 1  # the output's -pix_fmt
    assert option(cmd.args, "-movflags") == "+faststart"
    assert option(cmd.args, "-progress") == "pipe:1"
    assert option(cmd.args, "-t") == "12.000"
    assert cmd.args[-1] == "/out/v.mp4" and cmd.duration_seconds == 12.0


def test_missing_caption_and_narration_give_a_bare_slide_and_silence() -> None:
    media = [SegmentMedia(0, Path("/m/a.png"))]
    timeline = plan_timeline([SegmentTiming(0, 6.0)])
    cmd = build_command("ffmpeg", timeline, media, Path("/o.mp4"))
    (piece,) = cmd.pieces
    assert "overlay" not in graph_of(piece) and "xfade" not in graph_of(piece)
    assert cmd.files == {}
    assert "anullsrc=r=44100:cl=stereo,atrim=duration=6.000000" in cmd.filtergraph
    assert graph_of(piece).endswith("format=yuv420p[z0];[z0]format=yuv420p[frames]")
    assert "[video]format=yuv420p[vout]" in cmd.filtergraph


def test_avatar_clips_go_in_the_corner_from_their_start() -> None:
    cmd = build_command(
        "ffmpeg",
        TIMELINE,
        MEDIA,
        Path("/o.mp4"),
        avatars=[AvatarClip(Path("/m/av.mp4"), 4.0)],
        blank_caption=BLANK,
    )
    assert "[4:v]scale=320:-2,fps=30,setpts=PTS-STARTPTS+4.000000/TB[av0]" in cmd.filtergraph
    assert "[video][av0]overlay=main_w-overlay_w-24:24:eof_action=pass" in cmd.filtergraph


def test_media_must_match_the_timeline() -> None:
    with pytest.raises(ValueError, match="one media entry each"):
        build_command("ffmpeg", TIMELINE, MEDIA[:2], Path("/o.mp4"))

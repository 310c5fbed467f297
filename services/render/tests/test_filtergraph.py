"""The pure ffmpeg command builder."""

from __future__ import annotations

from pathlib import Path

import pytest

from ytmaker_render.filtergraph import (
    AvatarClip,
    Caption,
    SegmentMedia,
    build_command,
    zoom_expression,
)
from ytmaker_render.timeline import SegmentTiming, plan_timeline

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


def option(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def test_inputs_are_numbered_in_the_order_the_graph_uses_them() -> None:
    cmd = build_command("ffmpeg", TIMELINE, MEDIA, Path("/out/v.mp4"))
    inputs = [cmd.args[i + 1] for i, a in enumerate(cmd.args) if a == "-i"]
    assert inputs[:3] == ["/m/img0.png", "/m/cap0.png", "/m/n0.wav"]
    assert "[0:v]scale=1280:720" in cmd.filtergraph
    assert "[z0][1:v]overlay=0:main_h-overlay_h" in cmd.filtergraph
    assert "[2:a]aformat=" in cmd.filtergraph


def test_crossfades_start_where_the_next_narration_starts() -> None:
    cmd = build_command("ffmpeg", TIMELINE, MEDIA, Path("/out/v.mp4"))
    assert "[v0][v1]xfade=transition=fade:duration=0.500000:offset=4.000000[x1]" in cmd.filtergraph
    assert "[x1][v2]xfade=transition=fade:duration=0.500000:offset=8.000000[x2]" in cmd.filtergraph
    assert "[x2]format=yuv420p[vout]" in cmd.filtergraph
    assert "[a0][a1][a2]concat=n=3:v=0:a=1[aout]" in cmd.filtergraph


def test_each_slide_zooms_for_its_whole_clip_alternating_in_and_out() -> None:
    cmd = build_command("ffmpeg", TIMELINE, MEDIA, Path("/out/v.mp4"))
    assert f"zoompan=z='{zoom_expression(135, 0.08, zoom_in=True)}'" in cmd.filtergraph
    assert ":d=135:s=1280x720:fps=30" in cmd.filtergraph  # 4.5 s clip = 4 s slot + fade
    assert "z='1.08-0.08*on/134'" in cmd.filtergraph  # the second one zooms out
    assert ":d=120:s=1280x720" in cmd.filtergraph  # the last clip has no fade after it


def test_output_is_h264_aac_720p30_faststart_for_exactly_the_timeline() -> None:
    cmd = build_command("ffmpeg", TIMELINE, MEDIA, Path("/out/v.mp4"))
    assert option(cmd.args, "-c:v") == "libx264"
    assert option(cmd.args, "-c:a") == "aac"
    assert option(cmd.args, "-r") == "30"
    assert option(cmd.args, "-pix_fmt") == "yuv420p"
    assert option(cmd.args, "-movflags") == "+faststart"
    assert option(cmd.args, "-progress") == "pipe:1"
    assert option(cmd.args, "-t") == "12.000"
    assert cmd.args[-1] == "/out/v.mp4" and cmd.duration_seconds == 12.0


def test_caption_lines_are_overlaid_in_their_time_windows_in_order() -> None:
    captions = (Caption(Path("/c/a.png"), 0.0, 1.5), Caption(Path("/c/b.png"), 1.5, 4.0))
    cmd = build_command(
        "ffmpeg",
        plan_timeline([SegmentTiming(0, 4.0)]),
        [SegmentMedia(0, Path("/m/i.png"), captions, None)],
        Path("/o.mp4"),
    )
    assert "[z0][1:v]overlay=0:main_h-overlay_h" in cmd.filtergraph
    assert "enable='between(t,0.000,1.500)'[c0_0]" in cmd.filtergraph
    assert "[c0_0][2:v]overlay" in cmd.filtergraph
    assert "enable='between(t,1.500,4.000)'[c0_1]" in cmd.filtergraph
    assert "[c0_1]format=yuv420p[v0]" in cmd.filtergraph


def test_missing_caption_and_narration_give_a_bare_slide_and_silence() -> None:
    media = [SegmentMedia(0, Path("/m/a.png"))]
    timeline = plan_timeline([SegmentTiming(0, 6.0)])
    cmd = build_command("ffmpeg", timeline, media, Path("/o.mp4"))
    assert "overlay" not in cmd.filtergraph and "xfade" not in cmd.filtergraph
    assert "anullsrc=r=44100:cl=stereo,atrim=duration=6.000000" in cmd.filtergraph
    assert "[z0]format=yuv420p[vout]" in cmd.filtergraph


def test_avatar_clips_go_in_the_corner_from_their_start() -> None:
    cmd = build_command(
        "ffmpeg", TIMELINE, MEDIA, Path("/o.mp4"), avatars=[AvatarClip(Path("/m/av.mp4"), 4.0)]
    )
    assert "[9:v]scale=320:-2,fps=30,setpts=PTS-STARTPTS+4.000000/TB[av0]" in cmd.filtergraph
    assert "[x2][av0]overlay=main_w-overlay_w-24:24:eof_action=pass" in cmd.filtergraph


def test_media_must_match_the_timeline() -> None:
    with pytest.raises(ValueError, match="one media entry each"):
        build_command("ffmpeg", TIMELINE, MEDIA[:2], Path("/o.mp4"))

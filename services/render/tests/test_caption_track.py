"""Caption tracks rendered by ffmpeg: each caption is on screen on exactly its frames, looking
as Pillow drew it, and where there is none the band shows the slide."""

from __future__ import annotations

import subprocess
from pathlib import Path

from PIL import Image, ImageChops, ImageStat

from ytmaker_render.adapters.ffmpeg import run
from ytmaker_render.captions import BAND_HEIGHT, draw_band, draw_blank
from ytmaker_render.filtergraph import Caption, EncodeOptions, SegmentMedia, build_command
from ytmaker_render.timeline import HEIGHT, WIDTH, SegmentTiming, plan_timeline

SLIDE = (128, 128, 128)  # a gray that yuv420p keeps: what differs is the captions
LINES = {
    "a": "The widest of the three lines, wider than the other two",
    "b": "A line of middle width",
    "c": "Short",
}


def band_rows(ffmpeg: str, video: Path) -> list[Image.Image]:
    """The caption band (the bottom BAND_HEIGHT rows) of every frame, as RGB."""
    raw = subprocess.run(
        [
            ffmpeg,
            "-v",
            "error",
            "-i",
            str(video),
            "-vf",
            f"crop={WIDTH}:{BAND_HEIGHT}:0:{HEIGHT - BAND_HEIGHT}",
            "-pix_fmt",
            "rgb24",
            "-f",
            "rawvideo",
            "-",
        ],
        check=True,
        capture_output=True,
    ).stdout
    size = WIDTH * BAND_HEIGHT * 3
    return [
        Image.frombytes("RGB", (WIDTH, BAND_HEIGHT), raw[at : at + size])
        for at in range(0, len(raw), size)
    ]


def distance(a: Image.Image, b: Image.Image) -> float:
    """Mean absolute difference per channel value, 0–255."""
    return sum(ImageStat.Stat(ImageChops.difference(a, b)).mean) / 3


async def test_each_caption_is_on_screen_on_exactly_its_frames(ffmpeg: str, tmp_path: Path) -> None:
    folder = tmp_path / "it's captions"  # a quote in the paths the listing names
    folder.mkdir()
    slide = Image.new("RGB", (WIDTH, HEIGHT), SLIDE)
    slide.save(folder / "slide.png")
    bands = {name: draw_band(line, folder / f"{name}.png") for name, line in LINES.items()}
    # Off the frame times on purpose: a on frames 16-30 (0.533-1.000 s), b on 42-54, c from
    # 55 to the end (frame 59); a gap before a and one between a and b.
    captions = (
        Caption(bands["a"], 0.51, 1.01),
        Caption(bands["b"], 1.39, 1.81),
        Caption(bands["c"], 1.81, 2.0),
    )
    cmd = build_command(
        ffmpeg,
        plan_timeline([SegmentTiming(0, 2.0)]),
        [SegmentMedia(0, folder / "slide.png", captions, None)],
        tmp_path / "v.mp4",
        options=EncodeOptions(zoom=0, preset="ultrafast"),
        blank_caption=draw_blank(folder / "blank.png"),
    )
    for path, text in cmd.files.items():
        path.write_text(text)
    # Without the command's `-t`, which would hide a frame too many: the track must end
    # inside its clip (a last file listed twice, the concat demuxer's usual cure, did not).
    cut = cmd.args.index("-t")
    await run(cmd.args[:cut] + cmd.args[cut + 2 :], feeds=cmd.pieces, output=cmd.output)

    empty = slide.crop((0, HEIGHT - BAND_HEIGHT, WIDTH, HEIGHT)).convert("RGBA")
    looks: dict[str | None, Image.Image] = {None: empty.convert("RGB")}
    for name, band in bands.items():
        with Image.open(band) as drawn:
            looks[name] = Image.alpha_composite(empty, drawn.convert("RGBA")).convert("RGB")
    frames = band_rows(ffmpeg, cmd.output)
    assert len(frames) == 60
    shown = [min(looks, key=lambda name: distance(frame, looks[name])) for frame in frames]
    assert shown == [None] * 16 + ["a"] * 15 + [None] * 11 + ["b"] * 13 + ["c"] * 5
    # What is shown is what Pillow drew, over the slide, but for H.264 and 4:2:0 at the edges
    # of the letters (measured: at most 0.6 from the right look, at least 7.4 from the others)
    assert (
        max(distance(frame, looks[name]) for frame, name in zip(frames, shown, strict=True)) < 1.5
    )
    assert min(distance(looks[x], looks[y]) for x in looks for y in looks if x != y) > 5

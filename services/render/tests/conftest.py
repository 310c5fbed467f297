"""Fixtures for render's tests: small real media (slides, narration WAVs, an avatar clip)."""

from __future__ import annotations

import math
import struct
import subprocess
import wave
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from ytmaker_render.adapters.ffmpeg import ffmpeg_executable


def make_slide(path: Path, hue: int, size: tuple[int, int] = (1280, 720)) -> Path:
    image = Image.new("RGB", size, (hue % 256, 80, 160))
    draw = ImageDraw.Draw(image)
    for x in range(0, size[0], 64):
        draw.line([(x, 0), (x + 200, size[1])], fill=(230, 230, 230), width=3)
    image.save(path)
    return path


def make_tone(path: Path, seconds: float, freq: float = 440.0, rate: int = 22050) -> Path:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        frames = int(seconds * rate)
        out.writeframes(
            b"".join(
                struct.pack("<h", int(8000 * math.sin(2 * math.pi * freq * n / rate)))
                for n in range(frames)
            )
        )
    return path


def make_clip(path: Path, seconds: float) -> Path:
    subprocess.run(
        [
            ffmpeg_executable(),
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            f"testsrc2=s=320x320:r=25:d={seconds}",
            "-pix_fmt",
            "yuv420p",
            str(path),
        ],
        check=True,
    )
    return path


class Media:
    """The helpers above, as a fixture (test modules cannot import conftest)."""

    slide = staticmethod(make_slide)
    tone = staticmethod(make_tone)
    clip = staticmethod(make_clip)


@pytest.fixture(scope="session")
def ffmpeg() -> str:
    return ffmpeg_executable()


@pytest.fixture(scope="session")
def media() -> type[Media]:
    return Media

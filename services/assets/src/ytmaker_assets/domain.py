"""Pure parts of the assets stages: reading the script's reference, the visual style of a
project, caption layout, WAV timing. No I/O."""

from __future__ import annotations

import hashlib
import io
import math
import struct
import wave
from dataclasses import dataclass

WIDTH, HEIGHT = 1280, 720

# Palettes (background top, background bottom, accent, text): one chosen per project, so every
# image of a project shares a style while projects look different.
PALETTES: tuple[tuple[str, str, str, str], ...] = (
    ("#0f2027", "#2c5364", "#f7b733", "#ffffff"),
    ("#1d2b64", "#6b4e9b", "#f8cdda", "#ffffff"),
    ("#232526", "#414345", "#00c9ff", "#f5f5f5"),
    ("#134e5e", "#2f8f5b", "#fff3b0", "#ffffff"),
    ("#41295a", "#2f0743", "#ff9966", "#ffffff"),
    ("#3a1c71", "#b24592", "#ffd89b", "#ffffff"),
)


@dataclass(frozen=True)
class Style:
    top: str
    bottom: str
    accent: str
    text: str


def style_for(project_id: str) -> Style:
    """The project's style: stable for a project, spread across projects."""
    digest = int(hashlib.sha256(project_id.encode()).hexdigest(), 16)
    return Style(*PALETTES[digest % len(PALETTES)])


def wrap(text: str, fits: object, max_lines: int) -> list[str]:
    """Greedy word wrap: `fits(line) -> bool` says whether a line fits the width; the last
    line ends with an ellipsis when the text is longer than `max_lines`."""
    check = fits if callable(fits) else (lambda _line: True)
    lines: list[str] = []
    current = ""
    for word in text.split():
        candidate = f"{current} {word}".strip()
        if check(candidate) or not current:
            current = candidate
        else:
            lines.append(current)
            current = word
    if current:
        lines.append(current)
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = lines[-1].rstrip(".,;: ") + "…"
    return lines


def wav_duration(data: bytes) -> float:
    """Seconds of audio in a WAV file's bytes."""
    with wave.open(io.BytesIO(data)) as w:
        frames: int = w.getnframes()
        rate: int = w.getframerate()
    return frames / float(rate)


def tone_wav(seconds: float, rate: int = 22050, freq: float = 220.0) -> bytes:
    """A quiet tone that fades in and out, `seconds` long: the last-resort narration."""
    frames = int(seconds * rate)
    fade = max(1, int(0.05 * rate))
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        samples = bytearray()
        for i in range(frames):
            envelope = min(1.0, i / fade, (frames - i) / fade)
            value = int(3000 * envelope * math.sin(2 * math.pi * freq * i / rate))
            samples += struct.pack("<h", value)
        w.writeframes(bytes(samples))
    return buf.getvalue()


def silence_wav(seconds: float, rate: int = 22050) -> bytes:
    """`seconds` of silence: the narration of a segment with nothing to say."""
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(bytes(2 * int(seconds * rate)))
    return buf.getvalue()

"""Burned-in captions and the thumbnail, drawn with Pillow.

Captions are the narration, one line at a time, as transparent PNG bands that ffmpeg overlays
at the bottom of each slide while that part is spoken (filtergraph.py, timeline.py); a blank
band, all transparent, fills the frames between them in a segment's caption track. Drawing
them here rather than with ffmpeg's `subtitles` filter keeps the result independent of the
fonts fontconfig finds on a given machine.
"""

from __future__ import annotations

import contextlib
from functools import lru_cache
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont, ImageOps

from ytmaker_render.timeline import HEIGHT, WIDTH

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont

_FONT_FILES = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans-Bold.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Bold.ttf",
)
MARGIN = 72
MAX_LINES = 3


@lru_cache(maxsize=32)
def font(size: int) -> Font:
    """A bold sans font of `size` px: a system DejaVu/Liberation where installed, else
    Pillow's own bundled font (always available)."""
    for candidate in _FONT_FILES:
        if Path(candidate).is_file():
            return ImageFont.truetype(candidate, size)
    return ImageFont.load_default(size)


def wrap(text: str, face: Font, width: int) -> list[str]:
    """Greedy word wrap to `width` pixels; a word longer than a line is cut by characters."""
    lines: list[str] = []
    current = ""
    for word in text.split():
        candidate = f"{current} {word}".strip()
        if face.getlength(candidate) <= width:
            current = candidate
            continue
        if current:
            lines.append(current)
        while face.getlength(word) > width and len(word) > 1:
            cut = _longest_fit(word, face, width)
            lines.append(word[:cut])
            word = word[cut:]
        current = word
    if current:
        lines.append(current)
    return lines


def _longest_fit(word: str, face: Font, width: int) -> int:
    """How many leading characters of `word` fit in `width` pixels (at least one), by
    bisection: a narration of one long word costs O(n log n) measurements, not O(n³)."""
    low, high = 1, len(word)
    while low < high:
        middle = (low + high + 1) // 2
        if face.getlength(word[:middle]) <= width:
            low = middle
        else:
            high = middle - 1
    return low


def fit(
    text: str, width: int, *, start: int, smallest: int, max_lines: int
) -> tuple[Font, list[str]]:
    """The largest font from `start` down to `smallest` at which `text` wraps into
    `max_lines`; at the smallest size, extra lines are dropped with an ellipsis."""
    size = start
    while True:
        face = font(size)
        lines = wrap(text, face, width)
        if len(lines) <= max_lines or size <= smallest:
            break
        size -= 2
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = lines[-1].rstrip(".,;: ") + "…"
    return face, lines


BAND_HEIGHT = 64
BAND_FONT = 30


def caption_lines(text: str) -> list[str]:
    """The narration cut into lines that each fit the caption band in one line."""
    return wrap(" ".join(text.split()), font(BAND_FONT), WIDTH - 2 * MARGIN)


def draw_band(line: str, target: Path) -> Path:
    """One caption line as a WIDTH×BAND_HEIGHT transparent PNG: white text with a shadow on
    a translucent strip, for the bottom of the frame (below what slides draw)."""
    face = font(BAND_FONT)
    band = Image.new("RGBA", (WIDTH, BAND_HEIGHT), (0, 0, 0, 0))
    draw = ImageDraw.Draw(band)
    width = face.getlength(line)
    left = (WIDTH - width) / 2
    draw.rounded_rectangle(
        (left - 24, 8, left + width + 24, BAND_HEIGHT - 8), radius=10, fill=(0, 0, 0, 170)
    )
    top = (BAND_HEIGHT - BAND_FONT) / 2 - 3
    draw.text((left + 2, top + 2), line, font=face, fill=(0, 0, 0, 230))
    draw.text((left, top), line, font=face, fill=(255, 255, 255, 255))
    band.save(target, "PNG", compress_level=1)
    return target


def draw_blank(target: Path) -> Path:
    """A band with nothing on it, fully transparent: the same size and mode (RGBA) as
    `draw_band`'s, so that a caption track's frames never change format."""
    Image.new("RGBA", (WIDTH, BAND_HEIGHT), (0, 0, 0, 0)).save(target, "PNG", compress_level=1)
    return target


def draw_thumbnail(background: Path | None, title: str, target: Path) -> Path:
    """A 1280×720 JPEG (well under YouTube's 2 MiB): the first slide, darkened, with the title
    large in its upper half; a plain background when there is no slide Pillow can read."""
    image = Image.new("RGB", (WIDTH, HEIGHT), (24, 32, 48))
    if background is not None and background.is_file():
        # ffmpeg took it as a slide, but Pillow may not read it: the thumbnail does without
        unreadable = (OSError, ValueError, Image.DecompressionBombError)
        with contextlib.suppress(*unreadable), Image.open(background) as source:
            image = ImageOps.fit(source.convert("RGB"), (WIDTH, HEIGHT))
    shade = Image.new("RGBA", (WIDTH, HEIGHT), (0, 0, 0, 200))
    image = Image.alpha_composite(image.convert("RGBA"), shade).convert("RGB")
    face, lines = fit(
        " ".join(title.split()) or "Untitled",
        WIDTH - 2 * MARGIN,
        start=84,
        smallest=40,
        max_lines=3,
    )
    draw = ImageDraw.Draw(image)
    line_height = int(face.size * 1.2) if isinstance(face, ImageFont.FreeTypeFont) else 40
    y = max(MARGIN, HEIGHT * 0.4 - line_height * len(lines) / 2)  # above a slide's caption
    for line in lines:
        x = (WIDTH - face.getlength(line)) / 2
        draw.text((x + 3, y + 3), line, font=face, fill=(0, 0, 0))
        draw.text((x, y), line, font=face, fill=(255, 255, 255))
        y += line_height
    image.save(target, "JPEG", quality=88, optimize=True)
    return target

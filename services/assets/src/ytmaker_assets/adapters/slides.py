"""The offline image maker: a 1280×720 slide per segment drawn with Pillow (background
gradient in the project's palette, the title, the segment's caption laid out legibly)."""

from __future__ import annotations

import io
from functools import lru_cache
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from ytmaker_assets.domain import HEIGHT, WIDTH, Style, wrap

_FONT_DIRS = (Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/share/fonts/TTF"))
Font = ImageFont.FreeTypeFont | ImageFont.ImageFont


@lru_cache(maxsize=16)
def font(size: int, bold: bool = False) -> Font:
    """DejaVu Sans where installed, else Pillow's bundled font at that size."""
    name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
    for folder in _FONT_DIRS:
        if (folder / name).exists():
            return ImageFont.truetype(str(folder / name), size)
    return ImageFont.load_default(size=size)


def _hex(color: str) -> tuple[int, int, int]:
    return int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16)


def _gradient(style: Style) -> Image.Image:
    top, bottom = _hex(style.top), _hex(style.bottom)
    column = Image.new("RGB", (1, HEIGHT))
    for y in range(HEIGHT):
        t = y / (HEIGHT - 1)
        column.putpixel(
            (0, y), tuple(round(a + (b - a) * t) for a, b in zip(top, bottom, strict=True))
        )
    return column.resize((WIDTH, HEIGHT))


def draw_slide(title: str, caption: str, index: int, total: int, style: Style) -> bytes:
    """The PNG bytes of one slide. Blocking (CPU): call it in a thread."""
    image = _gradient(style)
    draw = ImageDraw.Draw(image, "RGBA")
    margin = 80
    accent, text = _hex(style.accent), _hex(style.text)
    title_font = font(40, bold=True)
    draw.rectangle((margin, 70, margin + 8, 130), fill=accent)
    for i, line in enumerate(
        wrap(title, lambda s: draw.textlength(s, font=title_font) < WIDTH - 2 * margin - 40, 2)
    ):
        draw.text((margin + 30, 70 + i * 50), line, font=title_font, fill=text)
    caption_font = font(54, bold=True)
    lines = wrap(caption, lambda s: draw.textlength(s, font=caption_font) < WIDTH - 2 * margin, 3)
    line_h = 68
    box_top = HEIGHT - 110 - line_h * len(lines)
    draw.rounded_rectangle(
        (margin - 30, box_top - 30, WIDTH - margin + 30, HEIGHT - 80), 24, fill=(0, 0, 0, 120)
    )
    for i, line in enumerate(lines):
        width = draw.textlength(line, font=caption_font)
        draw.text(((WIDTH - width) / 2, box_top + i * line_h), line, font=caption_font, fill=text)
    counter = f"{index} / {total}"
    small = font(26)
    draw.text(
        (WIDTH - margin - draw.textlength(counter, font=small), 86),
        counter,
        font=small,
        fill=accent,
    )
    out = io.BytesIO()
    image.save(out, "PNG", optimize=False)
    return out.getvalue()

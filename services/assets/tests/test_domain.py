"""Pure parts of assets: style per project, wrapping, WAV timing; and the offline makers."""

from __future__ import annotations

import ast
import io
from pathlib import Path

import pytest
from PIL import Image

from ytmaker_assets.adapters.slides import draw_slide
from ytmaker_assets.adapters.speech import EspeakEngine, ToneEngine, best_engine
from ytmaker_assets.domain import style_for, tone_wav, wav_duration, wrap


def test_style_is_stable_per_project_and_varies() -> None:
    assert style_for("p1") == style_for("p1")
    assert len({style_for(f"p{i}") for i in range(30)}) > 1


def test_wrap_respects_width_and_lines() -> None:
    lines = wrap("one two three four five six", lambda s: len(s) <= 9, 2)
    assert lines == ["one two", "three…"]
    assert wrap("short", lambda s: True, 3) == ["short"]


def test_tone_has_the_asked_duration() -> None:
    assert abs(wav_duration(tone_wav(2.5)) - 2.5) < 0.01
    assert abs(wav_duration(ToneEngine().synthesize("x", 3.0)) - 3.0) < 0.01


def test_slide_is_720p_png() -> None:
    data = draw_slide("A title", "A caption that is long enough to wrap " * 3, 1, 5, style_for("p"))
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG" and image.size == (1280, 720)


def test_offline_speech_engine_speaks() -> None:
    engine = best_engine("auto")
    seconds = wav_duration(engine.synthesize("Kafka keeps events in order.", 2.0))
    assert seconds > 0.5


@pytest.mark.parametrize("text", ["...", "…", "a\x00b", "\u200b\u202e", "🙂", "-- -f /etc/passwd"])
def test_any_narration_gives_a_playable_wav(text: str) -> None:
    """A segment with nothing a voice can say (punctuation, control characters) still gets its
    narration: audio of the segment's length at worst, never a crashed stage."""
    seconds = wav_duration(best_engine("auto").synthesize(text, 3.0))
    assert seconds > 0.1


def test_espeak_takes_the_narration_on_stdin_never_as_an_option(tmp_path: Path) -> None:
    """A narration such as `-f/etc/passwd` given as an argument would be read as espeak-ng's
    option to speak that file: the text goes on stdin."""
    seen = tmp_path / "seen"
    fake = tmp_path / "espeak-ng"
    fake.write_text(
        "#!/usr/bin/env python3\n"
        "import sys, wave\n"
        f"open({str(seen)!r}, 'w').write(repr((sys.argv[1:], sys.stdin.read())))\n"
        "out = sys.argv[sys.argv.index('-w') + 1]\n"
        "with wave.open(out, 'wb') as w:\n"
        "    w.setnchannels(1); w.setsampwidth(2); w.setframerate(22050)\n"
        "    w.writeframes(bytes(4410))\n"
    )
    fake.chmod(0o755)
    wav = EspeakEngine(str(fake)).synthesize("-f/etc/passwd", 1.0)
    args, text = ast.literal_eval(seen.read_text())
    assert not any("passwd" in arg for arg in args)
    assert text == "-f/etc/passwd"
    assert wav.startswith(b"RIFF")

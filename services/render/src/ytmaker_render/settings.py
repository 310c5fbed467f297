"""The render service's settings (env prefix YTMAKER_)."""

from __future__ import annotations

from pydantic import Field

from ytmaker_shared.stageworker import StageSettings


class RenderSettings(StageSettings):
    ffmpeg_path: str | None = Field(
        default=None, description="ffmpeg binary; default: the one imageio-ffmpeg ships."
    )
    render_preset: str = Field(default="veryfast", description="libx264 preset.")
    render_crf: int = Field(default=23, ge=0, le=51, description="libx264 quality.")
    render_threads: int = Field(default=0, ge=0, description="Encoder threads; 0 = automatic.")
    render_fade_s: float = Field(default=0.5, ge=0, lt=2, description="Cross-fade length.")
    render_pause_s: float = Field(default=0.35, ge=0, description="Silence after each narration.")
    render_zoom: float = Field(default=0.08, ge=0, le=0.5, description="Zoom over one slide.")
    render_supersample: float = Field(
        default=1.0, ge=1, le=3, description="Zoom on an image this many times larger (smoother)."
    )

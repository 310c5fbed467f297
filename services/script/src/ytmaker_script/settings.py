"""The script service's settings (env prefix YTMAKER_)."""

from __future__ import annotations

from pydantic import Field, SecretStr

from ytmaker_shared.stageworker import StageSettings


class ScriptSettings(StageSettings):
    gemini_api_key: SecretStr | None = Field(
        default=None, description="Gemini API key; without it the offline writer is used."
    )
    gemini_model: str = "gemini-2.5-flash"
    gemini_base_url: str | None = Field(default=None, description="Another endpoint (emulator).")
    gemini_timeout_s: float = Field(default=120.0, gt=0)

"""The assets service's settings (env prefix YTMAKER_)."""

from __future__ import annotations

from pydantic import Field, SecretStr

from ytmaker_shared.stageworker import StageSettings


class AssetsSettings(StageSettings):
    stability_api_key: SecretStr | None = Field(
        default=None, description="Stability AI key; without it slides are drawn offline."
    )
    stability_base_url: str = "https://api.stability.ai"
    stability_endpoint: str = Field(default="core", pattern=r"^(core|ultra|sd3)$")
    did_api_key: SecretStr | None = Field(
        default=None, description="D-ID key; without it the avatars stage is skipped."
    )
    did_base_url: str = "https://api.d-id.com"
    did_source_url: str = Field(
        default="https://d-id-public-bucket.s3.amazonaws.com/or-roman.jpg",
        description="The presenter picture D-ID animates.",
    )
    http_timeout_s: float = Field(default=60.0, gt=0)
    speech_engine: str = Field(
        default="auto", pattern=r"^(auto|piper|espeak-ng|tone)$", description="Offline TTS."
    )

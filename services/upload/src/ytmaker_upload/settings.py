"""The upload service's settings (env prefix YTMAKER_). Without all three YouTube credentials
the video is published locally into `publish_dir`."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr

from ytmaker_shared.stageworker import StageSettings


class UploadSettings(StageSettings):
    youtube_client_id: str | None = Field(default=None, description="OAuth client id.")
    youtube_client_secret: SecretStr | None = Field(default=None, description="OAuth secret.")
    youtube_refresh_token: SecretStr | None = Field(
        default=None,
        description=(
            "OAuth refresh token with the youtube.upload and youtube.readonly scopes (readonly: "
            "to find the video of an upload whose answer was lost, decision 0139)."
        ),
    )
    youtube_token_url: str = Field(
        default="https://oauth2.googleapis.com/token", description="OAuth token endpoint."
    )
    youtube_api_base: str = Field(
        default="https://www.googleapis.com", description="API root (an emulator in tests)."
    )
    youtube_chunk_mib: float = Field(
        default=8.0, gt=0, description="Upload chunk size; rounded down to 256 KiB units."
    )
    youtube_timeout_s: float = Field(default=60.0, gt=0, description="Per-request timeout.")
    youtube_max_tries: int = Field(default=6, ge=1, description="Tries per request.")
    youtube_backoff_base_s: float = Field(default=1.0, ge=0)
    youtube_backoff_max_s: float = Field(default=32.0, ge=0)
    publish_dir: Path = Field(
        default=Path("./var/published"), description="Where local publications go."
    )
    publish_privacy: Literal["private", "unlisted", "public"] = Field(
        default="private", description="Privacy when the project's settings are not known."
    )

    @property
    def youtube_configured(self) -> bool:
        return bool(
            self.youtube_client_id and self.youtube_client_secret and self.youtube_refresh_token
        )

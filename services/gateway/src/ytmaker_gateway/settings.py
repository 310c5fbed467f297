"""The gateway's settings, from `YTMAKER_*` environment variables (on top of ServiceSettings).

The JWT secret is a SecretStr read from the environment only: it never reaches a log line.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import NoDecode

from ytmaker_gateway.auth import GRANT_AUDIENCE, TokenConfig
from ytmaker_shared.artifacts.settings import ArtifactSettings


class GatewaySettings(ArtifactSettings):
    host: str = Field(default="127.0.0.1", description="Address the public server binds.")
    port: int = Field(default=8080, ge=0, le=65535, description="0 picks a free port.")
    public_url: str = Field(
        default="", description="Base URL clients use (for ws_url); empty: from the request."
    )
    progress_url: str = Field(
        default="http://127.0.0.1:8081", description="The progress service's internal API."
    )
    progress_timeout_s: float = Field(default=5.0, gt=0)

    # Security (docs/protocol.md "Authentication").
    jwt_secret: SecretStr | None = Field(default=None, description="HS256 signing secret.")
    jwt_issuer: str = "ytmaker"
    jwt_audience: str = "ytmaker-gateway"
    jwt_leeway_s: float = Field(
        default=30.0, ge=0, le=300, description="Clock skew allowed on a token's expiry."
    )
    artifact_link_ttl_s: int = Field(
        default=3600,
        ge=10,
        le=24 * 3600,
        description="How long a link to an artifact (`GET .../{name}/link`) opens it, checked "
        "on each request (a playing video's `Range` requests too); never past the token it was "
        "asked with (docs/decisions/0134).",
    )
    dev_allow_anonymous: bool = Field(
        default=False,
        description="Development only: requests without a token act as 'dev'. Refuses a "
        "non-loopback bind; every request must then name a loopback Host (and Origin).",
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Allowed CORS origins, comma-separated."
    )

    # Limits at the edge (docs/decisions/0041-strict-input-at-the-gateway.md, 0042).
    max_body_bytes: int = Field(
        default=1024 * 1024, ge=1024, description="Larger REST bodies: 413, before reading them."
    )
    max_connections_per_user: int = Field(
        default=50, ge=1, description="Open WebSockets per user on one replica; more: 4429."
    )
    runs_per_minute: float = Field(
        default=10.0, gt=0, description="Projects and runs a user may start per minute..."
    )
    runs_burst: int = Field(default=20, ge=1, description="...and at once; more: 429.")

    # WebSocket behaviour.
    heartbeat_interval_s: float = Field(
        default=30.0,
        gt=0,
        description="How often each WebSocket client is pinged; its `pong` acknowledges what "
        "was sent before the ping (what `old_client_id` restores after), and a client silent "
        "for two intervals is closed (4408).",
    )
    session_window_s: float = Field(default=300.0, ge=0, description="Reconnect window.")
    session_restore_wait_s: float = Field(
        default=2.0,
        ge=0,
        description="How long a reconnect waits for another replica to record the old "
        "connection's close before restoring from its last checkpoint.",
    )
    session_checkpoint_s: float = Field(
        default=10.0,
        ge=0,
        description="How often open sessions' acknowledged offsets go to the read model "
        "(what a reconnect restores from if this replica dies); 0: only on connect/close.",
    )
    client_queue_size: int = Field(default=1000, ge=1, description="Messages buffered per client.")
    max_subscriptions: int = Field(default=100, ge=1, description="Per connection.")
    max_messages_per_second: float = Field(default=50.0, gt=0, description="Per connection.")
    max_violations: int = Field(
        default=5,
        ge=4,  # the SDKs keep 4 subscribes in flight, each of which may be refused (0135)
        description="Rate or limit violations in a row before the close; at least 4, the "
        "subscribes an SDK keeps waiting for their answer.",
    )
    max_frame_bytes: int = Field(default=64 * 1024, ge=1024, description="Larger frames: 1009.")
    write_batch: int = Field(default=64, ge=1, description="Messages sent per writer wake-up.")
    ws_compression: bool = Field(
        default=False,
        description="Offer permessage-deflate: less bandwidth, more CPU and latency per message "
        "(docs/decisions/0033-gateway-latency.md).",
    )

    shutdown_grace_s: int = Field(
        default=5, ge=1, description="How long a stopping gateway waits for open connections."
    )

    # Replay and caches.
    replay_readers: int = Field(default=4, ge=1, description="Kafka readers for replays.")
    replay_timeout_s: float = Field(
        default=20.0, gt=0, description="How long one page of a replay may take to read."
    )
    replay_page: int = Field(
        default=500, ge=1, description="Updates per replay page (docs/decisions/0040)."
    )
    replay_stall_s: float = Field(
        default=20.0,
        gt=0,
        description="A replay waiting for a client that read nothing for this long: 1013.",
    )
    cache_updates_per_task: int = Field(
        default=20_000, ge=0, description="Recent updates the hub keeps per task, at most..."
    )
    cache_tasks: int = Field(default=5000, ge=0, description="...for this many tasks...")
    cache_bytes: int = Field(
        default=256 * 1024 * 1024,
        ge=0,
        description="...in this many bytes: past it, the task updated longest ago goes "
        "(docs/decisions/0040-paged-replay.md).",
    )

    unknown_task_wait_s: float = Field(
        default=3.0,
        ge=0,
        description="How long a subscribe, or a read of a project created here a moment ago, "
        "waits for the read model to fold it.",
    )

    @field_validator("jwt_audience")
    @classmethod
    def _not_the_grants(cls, value: str) -> str:
        """Tokens of the grants' audience would be taken for grants, and grants for tokens."""
        if value == GRANT_AUDIENCE:
            raise ValueError(f"{GRANT_AUDIENCE!r} is the audience of artifact grants")
        return value

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        return value

    def token_config(self) -> TokenConfig:
        return TokenConfig(
            secret=self.jwt_secret.get_secret_value() if self.jwt_secret else None,
            issuer=self.jwt_issuer,
            audience=self.jwt_audience,
            allow_anonymous=self.dev_allow_anonymous,
            leeway_s=self.jwt_leeway_s,
        )

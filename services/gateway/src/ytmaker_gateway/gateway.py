"""Everything a request handler needs, built once per process by `main` (or by a test)."""

from __future__ import annotations

from dataclasses import dataclass

from ytmaker_gateway.adapters.progress_api import ProgressApi
from ytmaker_gateway.auth import TokenConfig
from ytmaker_gateway.core.access import Access
from ytmaker_gateway.core.commands import Commands
from ytmaker_gateway.core.sessions import SessionRegistry
from ytmaker_gateway.fanout.hub import Hub
from ytmaker_gateway.fanout.streams import Streams
from ytmaker_gateway.settings import GatewaySettings
from ytmaker_shared.artifacts import ArtifactStore


@dataclass
class Gateway:
    settings: GatewaySettings
    tokens: TokenConfig
    progress: ProgressApi
    access: Access
    commands: Commands
    hub: Hub
    streams: Streams
    sessions: SessionRegistry
    artifacts: ArtifactStore
    reconnects: int = 0
    reconnects_restored: int = 0

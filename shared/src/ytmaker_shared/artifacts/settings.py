"""Where artifacts are stored: the settings every process that reads or writes them shares
(the stage services write, the gateway serves), defined once."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from ytmaker_shared.artifacts import ArtifactStore, FileArtifactStore, open_store
from ytmaker_shared.settings import ServiceSettings


class ArtifactSettings(ServiceSettings):
    artifact_dir: Path = Field(
        default=Path("./var/artifacts"), description="Root of the local artifact store."
    )
    artifact_url: str | None = Field(
        default=None,
        description="Artifact store URL (file:///dir, s3://bucket/prefix, memory://name); "
        "wins over dir.",
    )

    def artifact_store(self) -> ArtifactStore:
        """The store these settings name."""
        if self.artifact_url:
            return open_store(self.artifact_url)
        return FileArtifactStore(self.artifact_dir)

"""Settings of every stage service (env prefix YTMAKER_, docs/settings.md)."""

from __future__ import annotations

from pydantic import Field

from ytmaker_shared.artifacts.settings import ArtifactSettings
from ytmaker_shared.stageworker.policy import StagePolicy


class StageSettings(ArtifactSettings):
    """A stage service's settings. The `stage_*` limits override the stage's own policy
    (`StageWork.policy`) when set, for every stage of the process."""

    stage_max_tasks: int = Field(default=4, ge=1, description="Jobs running at once, at most.")
    stage_max_attempts: int | None = Field(default=None, ge=1)
    stage_soft_time_limit_s: float | None = Field(default=None, gt=0)
    stage_hard_time_limit_s: float | None = Field(default=None, gt=0)
    stage_backoff_base_s: float | None = Field(default=None, ge=0)
    stage_backoff_max_s: float | None = Field(default=None, ge=0)
    stage_progress_interval_s: float = Field(
        default=0.25, ge=0, description="Least time between two stage.progress events."
    )
    stage_create_topics: bool = Field(
        default=True, description="Create missing topics at start (idempotent)."
    )

    def policy_for(self, policy: StagePolicy) -> StagePolicy:
        soft = self.stage_soft_time_limit_s
        hard = self.stage_hard_time_limit_s
        if soft is not None and hard is None and soft > policy.hard_limit_s:
            hard = soft
        if hard is not None and soft is None and hard < policy.soft_limit_s:
            soft = hard
        return policy.with_overrides(
            max_attempts=self.stage_max_attempts,
            soft_limit_s=soft,
            hard_limit_s=hard,
            backoff_base_s=self.stage_backoff_base_s,
            backoff_max_s=self.stage_backoff_max_s,
        )

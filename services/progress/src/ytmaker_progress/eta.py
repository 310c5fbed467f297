"""Time left of a running task, from how long each stage took recently (pure).

The averages come from the read model: completed stage attempts finished within the window
(`YTMAKER_PROGRESS_ETA_WINDOW_S`, an hour by default). Asset stages run in parallel, so they
count as the slowest of them; a stage's own progress shortens its share.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ytmaker_shared.stages import ASSET_STAGES, Stage

_DONE = {"completed", "skipped"}
_SEQUENCE = (Stage.SCRIPT, ASSET_STAGES, Stage.RENDER, Stage.UPLOAD)


def estimate(state: Mapping[str, Any], averages: Mapping[str, float]) -> float | None:
    """Seconds left for a queued, running or paused task (a TaskState as JSON); None when a
    stage still to run has no recent duration, or the task has finished."""
    if state.get("status") not in ("queued", "running", "paused"):
        return None
    stages: Mapping[str, Any] = state.get("stages") or {}
    total = 0.0
    for step in _SEQUENCE:
        group = sorted(step) if isinstance(step, frozenset) else [step]
        left: list[float] = []
        for stage in group:
            st = stages.get(stage.value) or {}
            if st.get("status") in _DONE:
                continue
            if stage.value not in averages:
                return None
            left.append(averages[stage.value] * (1 - float(st.get("progress", 0.0)) / 100))
        total += max(left, default=0.0)
    return round(total, 1)

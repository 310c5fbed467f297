"""The service credential of the services a test starts (set in tests/conftest.py)."""

from __future__ import annotations

import os


def internal_headers() -> dict[str, str]:
    """Headers that the progress service's internal API requires."""
    return {"authorization": f"Bearer {os.environ['YTMAKER_INTERNAL_TOKEN']}"}

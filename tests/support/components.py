"""What a test does when a component it needs (Kafka, PostgreSQL, ...) is not available.

Locally such a test is skipped with the reason; in CI (env ``CI`` is ``true``, any case) it fails,
because nothing may be skipped there.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def in_ci() -> bool:
    """True when running in CI (env ``CI`` equals ``true``, case-insensitive)."""
    return os.environ.get("CI", "").strip().lower() == "true"


def unavailable(reason: str) -> NoReturn:
    """Skip the current test (locally) or fail it (in CI) because a component is missing."""
    if in_ci():
        pytest.fail(f"component unavailable in CI: {reason}", pytrace=False)
    pytest.skip(reason)

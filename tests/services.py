"""How tests get the real services. In CI (CI=true) a missing service is a failure, never a
skip; elsewhere a test skips with a message that says how to get the service."""
from __future__ import annotations

import os

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_service(available: bool, what: str, how: str) -> None:
    if available:
        return
    message = f"{what} is not available: {how}"
    if IN_CI:
        pytest.fail(message + " (CI must not skip tests that need real services)")
    pytest.skip(message)

"""Suite-wide settings: hypothesis profiles (CI runs more examples than a developer's loop)."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile("dev", max_examples=20, deadline=None)
settings.register_profile(
    "ci", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

# A real sshd on loopback for the SSH transport tests (tests/sshd.py).
pytest_plugins = ["sshd"]

"""Suite-wide settings: hypothesis profiles (CI runs more examples than a developer's loop)."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

from hypothesis import HealthCheck, settings

settings.register_profile("dev", max_examples=20, deadline=None)
settings.register_profile(
    "ci", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

# A real sshd on loopback for the SSH transport tests (tests/sshd.py).
pytest_plugins = ["sshd"]

# The spec cache (reconciler/spec/validation_cache.py) lives in XDG_CACHE_HOME: the suite gets
# its own, so that no run reads a developer's cache or leaves entries in it.
_CACHE_HOME = tempfile.mkdtemp(prefix="reconciler-test-cache-")
os.environ["XDG_CACHE_HOME"] = _CACHE_HOME
atexit.register(shutil.rmtree, _CACHE_HOME, True)

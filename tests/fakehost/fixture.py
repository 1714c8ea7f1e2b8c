"""The `fake_host` pytest fixture. Use it from a conftest.py:

from fakehost.fixture import fake_host  # noqa: F401   (or tests.fakehost.fixture)
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from . import FakeHost


@pytest.fixture
def fake_host(tmp_path: Path) -> Iterator[FakeHost]:
    """A fresh FakeHost in the test's tmp_path (state.json, calls.jsonl, root/, bin/)."""
    host = FakeHost(tmp_path)
    try:
        yield host
    finally:
        host.close()

"""Run only by test_harness.py in a child pytest (its name keeps normal collection away).

E2E_PROBE_OUT: file to write the container's identity to (JSON), once booted.
E2E_PROBE_MODE: "fail" (assert False), "hang" (sleep until the parent interrupts us),
"pass".
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from .harness import Container


def test_probe_container(container: Container) -> None:
    container.run(["loginctl", "enable-linger", "user"])
    container.wait_unit("user@1000.service", timeout=30)
    # something long-running inside, started through nsenter (outside the unit tree) too
    container.run(["sh", "-c", "setsid sleep 1000 </dev/null >/dev/null 2>&1 &"])
    info = {
        "name": container.name,
        "nspawn": container.nspawn_pid,
        "pid1": container.pid1,
        "root": str(container.root),
        "workdir": str(container.workdir),
        "cgroups": [str(p) for p in container.cgroups],
    }
    out = Path(os.environ["E2E_PROBE_OUT"])
    out.with_suffix(".tmp").write_text(json.dumps(info))
    out.with_suffix(".tmp").rename(out)
    mode = os.environ.get("E2E_PROBE_MODE", "pass")
    if mode == "fail":
        raise AssertionError("deliberate failure (probe)")
    if mode == "hang":
        time.sleep(600)


def test_probe_trivial() -> None:
    pass

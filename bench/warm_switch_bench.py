"""The real switch's downtime with its built-in warm-up, against a warm restart, under real systemd.

    sudo .venv/bin/python bench/warm_switch_bench.py [--runs 3]

Not a test: a measurement (issue 21 item 5, "a first switch costs at most 1.5x a warm
restart"). One systemd-nspawn container set up as bench/update_bench.py sets it up (node 22,
real openclaw releases offline from the e2e's npm cache, two profiles of
tests/e2e/specs/updates.yaml; the reconciler is this tree, bound at /src), both profiles on
2026.1.30 first. Then, in this order:

- first switch: `ops` moved to 2026.2.1 by `reconciler apply`, which installs it, warms it up
  (no unit runs it: it never ran in this container, its compile caches are empty) while
  2026.1.30 serves, then switches;
- warm restart, --runs times: `systemctl --user restart` of ops's unit (2026.2.1, caches warm);
- warm switch: `ops` back to 2026.1.30 (personal runs it: no warm-up, caches warm);
- second switch to 2026.2.1: installed, caches warm, and warmed up again (no unit runs it).

Downtime = the longest stretch in which http://127.0.0.1:18809/ did not answer 200, sampled
every 0.1 s inside the container (the poller of bench/update_bench.py), the poller stopped
only once the port answers again; the switch's own downtime and warm-up time are read from the
apply's output. One container gives one first switch: a version's first start happens once.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import update_bench as ub  # noqa: E402

from tests.e2e import harness  # noqa: E402

OPS_UNIT = "openclaw-gateway-ops.service"
REPORT = re.compile(r"ops: \S+ -> \S+, healthy \(downtime ([\d.]+) s(?:; ([^)]*))?\)")


def polled(c: harness.Container, action: Callable[[], str]) -> tuple[float, str]:
    """(ops's longest HTTP gap during `action` and until it answers again, what `action`
    returned)."""
    stop = f"/run/bench-stop-{time.monotonic_ns()}"
    argv = c.command(["python3", ub.POLLER, stop, str(ub.PORTS["ops"])])
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    time.sleep(1.0)
    out = action()
    c.wait_port(ub.PORTS["ops"], timeout=600)
    time.sleep(2.0)  # HTTP 200 follows the listening socket by a moment
    c.run(["touch", stop])
    polled_out, _ = proc.communicate(timeout=30)
    return float(polled_out.split("=")[1]), out


def apply(c: harness.Container) -> str:
    r = c.run(["reconciler", "apply", ub.SPEC, "--yes", "--no-color"], check=False, timeout=1800)
    out = r.stdout + r.stderr
    if r.returncode != 0:
        raise RuntimeError(f"apply exit {r.returncode}:\n{out}")
    return out


def switch(c: harness.Container, ops: str) -> dict[str, float | str]:
    ub.write_spec(c, ops, ub.OLD)
    t0 = time.monotonic()
    down, out = polled(c, lambda: apply(c))
    found = REPORT.search(out)
    return {
        "down": down,
        "apply": round(time.monotonic() - t0, 1),
        "reported": found.group(0) if found else out.strip().splitlines()[-1],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    c = ub.boot()
    figures: dict[str, object] = {}
    try:
        ub.write_spec(c, ub.OLD, ub.OLD)
        apply(c)
        figures["first_switch"] = switch(c, ub.NEW)
        print(f"first switch: {figures['first_switch']}", flush=True)
        restarts = []
        for _ in range(args.runs):
            down, _ = polled(c, lambda: c.systemctl_user("restart", OPS_UNIT, timeout=400).stdout)
            restarts.append(down)
        figures["warm_restarts"] = restarts
        print(f"warm restarts: {restarts}", flush=True)
        figures["warm_switch"] = switch(c, ub.OLD)
        print(f"warm switch: {figures['warm_switch']}", flush=True)
        figures["second_switch"] = switch(c, ub.NEW)
        print(f"second switch: {figures['second_switch']}", flush=True)
        print(f"load average {os.getloadavg()[0]:.1f}")
    finally:
        c.destroy()
    first = figures["first_switch"]
    assert isinstance(first, dict)
    restart = statistics.median(restarts)
    print(json.dumps(figures))
    print(
        f"first switch down {first['down']:.1f} s / warm restart (median of {len(restarts)}) "
        f"{restart:.1f} s = {float(first['down']) / restart:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

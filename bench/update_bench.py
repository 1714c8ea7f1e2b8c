"""Gateway updates with the real gateway under real systemd: downtime, disk, apply time.

    sudo .venv/bin/python bench/update_bench.py [--runs 3]

Not a test: a measurement (issue 13, "Measure and report"). One systemd-nspawn container from the
e2e harness, set up as tests/e2e/test_updates.py sets it up (node 22, the offline npm cache of
tests/e2e/images.py with openclaw 2026.1.30, 2026.2.1 and the broken 2026.9.6, the user's
~/.npmrc, versions on a tmpfs), two profiles from tests/e2e/specs/updates.yaml. Then:

- downtime of a successful switch: `ops` moved between 2026.1.30 and 2026.2.1 --runs times
  (the first move installs 2026.2.1 and starts it cold, later ones find it installed and its
  compile caches warm); downtime = the longest stretch during the apply in which
  http://127.0.0.1:<port>/ did not answer 200, sampled every 0.1 s inside the container by a
  poller started before the apply; `personal`'s downtime is measured too (it must be 0);
- downtime of a rolled-back switch: `ops` to 2026.9.6 (installs, prints its version, refuses to
  start on node 22), with the same poller;
- disk per installed version: `du -sm` of each `<prefix>/<version>/`;
- apply to healthy: wall time of `reconciler apply` for an update (a switch to an installed
  version) vs a same-version no-op.

Prints one table; the figures go to docs/updates.md by hand.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.e2e import harness, images  # noqa: E402

USER = images.USER
HOME = f"/home/{USER}"
SPEC_SOURCE = REPO / "tests" / "e2e" / "specs" / "updates.yaml"
SPEC = "/etc/reconciler/updates.yaml"
PORTS = {"ops": 18809, "personal": 18789}
PREFIX = f"{HOME}/.local/lib/openclaw"
OLD, NEW = images.OPENCLAW_WORKING
BROKEN = images.OPENCLAW_BROKEN
POLLER = "/opt/bench-poll.py"

POLL_SOURCE = textwrap.dedent(
    """
    import os, sys, time, urllib.request
    ports = [int(p) for p in sys.argv[2:]]
    stop = sys.argv[1]
    down = {p: None for p in ports}
    worst = {p: 0.0 for p in ports}
    while not os.path.exists(stop):
        now = time.monotonic()
        for p in ports:
            try:
                ok = urllib.request.urlopen(f"http://127.0.0.1:{p}/", timeout=0.5).status == 200
            except Exception:
                ok = False
            if not ok and down[p] is None:
                down[p] = now
            elif ok and down[p] is not None:
                worst[p] = max(worst[p], now - down[p])
                down[p] = None
        time.sleep(0.1)
    now = time.monotonic()
    for p in ports:
        if down[p] is not None:
            worst[p] = max(worst[p], now - down[p])
    print(" ".join(f"{p}={worst[p]:.2f}" for p in ports))
    """
)


def boot() -> harness.Container:
    lib = f"{HOME}/.local/lib"
    c = harness.Container(
        real_gateway=images.ensure_gateway(),
        npm_cache=images.ensure_npm_cache(),
        nspawn_args=[f"--tmpfs={lib}:mode=0755,uid={images.UID},gid={images.UID}"],
    )
    c.prepare()
    assert c.root is not None
    local = c.root / HOME.lstrip("/") / ".local"
    local.mkdir(mode=0o755)
    os.chown(local, images.UID, images.UID)
    (c.root / POLLER.lstrip("/")).write_text(POLL_SOURCE)
    c.boot()
    c.write_file(f"{HOME}/.npmrc", images.npmrc(), user=USER)
    c.run(["loginctl", "enable-linger", USER])
    c.wait_unit(f"user@{images.UID}.service", timeout=30)
    return c


def write_spec(c: harness.Container, ops: str, personal: str) -> None:
    doc: dict[str, Any] = yaml.safe_load(SPEC_SOURCE.read_text())
    doc["runtime"]["gateway"]["version"] = personal
    if ops != personal:
        doc["profiles"]["ops"]["gateway_version"] = ops
    c.write_file(SPEC, yaml.safe_dump(doc, sort_keys=False))


def apply(c: harness.Container, poll: bool = True) -> tuple[float, int, dict[str, float], str]:
    """(wall seconds, exit code, downtime per profile, output) of one `reconciler apply`."""
    stop = f"/run/bench-stop-{time.monotonic_ns()}"
    proc = None
    if poll:
        argv = c.command(["python3", POLLER, stop, *map(str, PORTS.values())])
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
        time.sleep(1.0)  # first samples before the apply starts
    t0 = time.monotonic()
    r = c.run(["reconciler", "apply", SPEC, "--yes", "--no-color"], check=False, timeout=1800)
    took = time.monotonic() - t0
    down: dict[str, float] = {}
    if proc is not None:
        time.sleep(1.0)
        c.run(["touch", stop])
        out, _ = proc.communicate(timeout=30)
        by_port = dict(item.split("=") for item in out.split())
        down = {name: float(by_port[str(port)]) for name, port in PORTS.items()}
    return took, r.returncode, down, r.stdout + r.stderr


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    c = boot()
    rows: list[tuple[str, str]] = []
    try:
        write_spec(c, OLD, OLD)
        took, rc, _, out = apply(c, poll=False)
        assert rc == 0, out
        rows.append((f"first apply: install {OLD}, start 2 profiles", f"{took:.1f} s"))

        switches: list[float] = []
        others: list[float] = []
        walls: list[float] = []
        target = NEW
        for i in range(args.runs + 1):
            write_spec(c, target, OLD)
            took, rc, down, out = apply(c)
            assert rc == 0, out
            label = "with install, cold start" if i == 0 else "installed, warm"
            print(f"switch ops -> {target} ({label}): apply {took:.1f} s, downtime {down}")
            if i == 0:
                rows.append(
                    (
                        f"switch ops -> {NEW}, install + cold first start",
                        f"apply {took:.1f} s, "
                        f"ops down {down['ops']:.1f} s, personal down {down['personal']:.1f} s",
                    )
                )
            else:
                switches.append(down["ops"])
                others.append(down["personal"])
                walls.append(took)
            target = OLD if target == NEW else NEW
        rows.append(
            (
                f"switch ops between installed versions (median of {args.runs})",
                f"ops down {statistics.median(switches):.1f} s "
                f"(all: {', '.join(f'{x:.1f}' for x in switches)}), "
                f"personal down {max(others):.1f} s",
            )
        )
        rows.append(("apply to healthy, update (median)", f"{statistics.median(walls):.1f} s"))

        noops = []
        for _ in range(args.runs):
            took, rc, _, out = apply(c, poll=False)
            assert rc == 0, out
            noops.append(took)
        rows.append(("apply, same-version no-op (median)", f"{statistics.median(noops):.1f} s"))

        write_spec(c, BROKEN, OLD)
        took, rc, down, out = apply(c)
        tail = "\n".join(out.splitlines()[-12:])
        print(f"rolled-back switch: exit {rc}, apply {took:.1f} s, downtime {down}\n{tail}")
        rows.append(
            (
                f"switch ops -> {BROKEN}, rolled back",
                f"exit {rc}, apply {took:.1f} s, "
                f"ops down {down['ops']:.1f} s, personal down {down['personal']:.1f} s",
            )
        )
        du = c.run(["sh", "-c", f"du -sm {PREFIX}/*/"]).stdout
        for line in du.splitlines():
            size, path = line.split()
            rows.append((f"disk, {Path(path).name}", f"{size} MB"))
    finally:
        c.destroy()
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k.ljust(width)}  {v}")
    print(json.dumps(dict(rows)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

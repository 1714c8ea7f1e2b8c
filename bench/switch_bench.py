"""Time from `apply` to a healthy gateway: a version update (the health-gated switch) against
a same-version no-op, on the fake host (tests/fakehost).

    .venv/bin/python bench/switch_bench.py [--runs N]

Each run builds a fake host whose profile `ops` runs 2026.1.24-3 from its versioned install,
then times, through the real engine (probes, planner, runner, fake executables):
- update: probe + plan + run the unit's switch to 2026.2.1 until `gateway health` is ok
  (health_window 0: the fake answers at once; the real gateway's figures come from the e2e
  suite), and the downtime the switch measured itself;
- no-op: probe + plan of the same spec once converged (nothing to run).
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from fakehost import gateway_unit_text  # noqa: E402
from kinds.gateway_host import GatewayHost, gateway_spec  # noqa: E402

from reconciler.core.action import GatedSwitch  # noqa: E402
from reconciler.gateway.addresses import unit_address  # noqa: E402
from reconciler.shell.apply import apply_plan  # noqa: E402
from reconciler.spec.model import GatewayRuntime, Profile, Runtime, Spec  # noqa: E402

OLD, NEW = "2026.1.24-3", "2026.2.1"
UNIT = "clawdbot-gateway-ops.service"


def spec_for(version: str) -> Spec:
    spec = gateway_spec(Profile("ops", 18809))
    runtime = GatewayRuntime("clawdbot", version=version, start_timeout_s=30, health_window_s=0)
    return dataclasses.replace(spec, runtime=Runtime(node=">=22.12", gateway=runtime))


def one_run(directory: Path) -> tuple[float, float, float]:
    """(update s, its measured downtime s, no-op s)."""
    gw = GatewayHost(directory)
    entry = gw.home / ".local/lib/clawdbot" / OLD / "node_modules/clawdbot/dist/entry.js"
    entry.parent.mkdir(parents=True)
    entry.write_text("#!/usr/bin/env node\n")
    prefix = gw.home / ".local/lib/clawdbot" / OLD / "node_modules"
    text = gateway_unit_text(
        gw.home,
        profile="ops",
        port=18809,
        prefix=prefix,
        token=None,
        node=str(gw.fake.bin_dir / "node"),
    )
    gw.fake.add_unit_file(UNIT, text)
    gw.fake.daemon_reload()
    gw.fake.set_unit_state(UNIT, "active")
    spec = spec_for(NEW)
    started = time.monotonic()
    plan = gw.plan(spec)
    switch = next(a for a in plan.actions if a.address == unit_address("ops"))
    result = apply_plan(dataclasses.replace(plan, actions=(switch,)), gw.runner)
    update_s = time.monotonic() - started
    (outcome,) = result.outcomes
    report = next(op.report for op in outcome.operations if op.report is not None)
    assert report.ok and any(isinstance(op, GatedSwitch) for op in switch.operations)
    started = time.monotonic()
    again = gw.plan(spec)
    noop_s = time.monotonic() - started
    assert all(a.address != unit_address("ops") for a in again.actions)
    return update_s, report.downtime_s or 0.0, noop_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    rows = []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory() as tmp:
            rows.append(one_run(Path(tmp)))
    for name, index in (("update (apply to healthy)", 0), ("  downtime", 1), ("no-op plan", 2)):
        values = [r[index] for r in rows]
        print(
            f"{name:28s} median {statistics.median(values):6.3f} s  "
            f"min {min(values):6.3f} s  max {max(values):6.3f} s  (n={len(values)})"
        )


if __name__ == "__main__":
    main()

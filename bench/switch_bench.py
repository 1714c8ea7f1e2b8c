"""Time from `apply` to a healthy gateway: a version update (the health-gated switch) against
a same-version no-op, on the fake host (tests/fakehost).

    .venv/bin/python bench/switch_bench.py [--runs N]

Each run builds a fake host whose profile `ops` runs 2026.1.24-3 from its versioned install,
then times, through the real engine (probes, planner, runner, fake executables):
- update: `apply` to 2026.2.1 (probe, plan, the fake npm install of the new version, the
  switch until `gateway health` is ok; health_window 0: the fake answers at once), and the
  downtime the switch measured itself;
- no-op: `apply` of the same spec once converged (probe, plan, nothing to run).
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

from kinds.gateway_host import GatewayHost, gateway_spec  # noqa: E402

from reconciler.core.action import GatedSwitch  # noqa: E402
from reconciler.gateway.addresses import unit_address  # noqa: E402
from reconciler.spec.model import GatewayRuntime, Node, Profile, Runtime, Spec  # noqa: E402

OLD, NEW = "2026.1.24-3", "2026.2.1"
UNIT = "clawdbot-gateway-ops.service"


def spec_for(version: str) -> Spec:
    spec = gateway_spec(Profile("ops", 18809))
    runtime = GatewayRuntime(
        "clawdbot", version=version, install="versioned", start_timeout_s=30, health_window_s=0
    )
    return dataclasses.replace(spec, runtime=Runtime(node=Node(range=">=22.12"), gateway=runtime))


def one_run(directory: Path) -> tuple[float, float, float]:
    """(update s, its measured downtime s, no-op s)."""
    gw = GatewayHost(directory)
    gw.fake.set_npm_registry({"clawdbot": {OLD: "ok", NEW: "ok"}})
    gw.converge(spec_for(OLD))
    spec = spec_for(NEW)
    started = time.monotonic()
    result = gw.apply(spec)  # probe, plan, install NEW, the switch until healthy
    update_s = time.monotonic() - started
    outcome = next(o for o in result.outcomes if o.action.address == unit_address("ops"))
    report = next(op.report for op in outcome.operations if op.report is not None)
    assert report.ok and any(isinstance(op, GatedSwitch) for op in outcome.action.operations)
    started = time.monotonic()
    again = gw.apply(spec)  # same version: probe, plan, nothing to run
    noop_s = time.monotonic() - started
    assert again.outcomes == [] or all(o.outcome != "failed" for o in again.outcomes)
    return update_s, report.downtime_s or 0.0, noop_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    rows = []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory() as tmp:
            rows.append(one_run(Path(tmp)))
    for name, index in (("update (apply to healthy)", 0), ("  downtime", 1), ("no-op apply", 2)):
        values = [r[index] for r in rows]
        print(
            f"{name:28s} median {statistics.median(values):6.3f} s  "
            f"min {min(values):6.3f} s  max {max(values):6.3f} s  (n={len(values)})"
        )


if __name__ == "__main__":
    main()

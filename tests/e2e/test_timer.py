"""Issue 7 against real systemd: the timer that apply installs puts a drifted host back by itself."""

from __future__ import annotations

import json
import time
from typing import Any

from .harness import Container
from .test_scenarios import HOME, PORTS, UNITS, answers, apply, install_spec, show, unit_prop

TIMER_SPEC = """
reconcile:
  timer: {enabled: true, interval: 15s, on_boot: 5s, randomized_delay: 0s}
"""


def test_timer_restarts_a_stopped_gateway_by_itself(container: Container) -> None:
    c = container
    install_spec(c, extra=TIMER_SPEC)
    apply(c)  # as root: gateways, linger, serve, and the user's reconcile timer
    assert unit_prop(c, "reconciler.timer", "ActiveState") == "active"
    assert unit_prop(c, "reconciler.timer", "UnitFileState") == "enabled"
    exec_start = unit_prop(c, "reconciler.service", "ExecStart")
    assert "apply /etc/reconciler/host.yaml --yes --non-interactive" in exec_start

    c.systemctl_user("stop", UNITS["ops"])
    assert unit_prop(c, UNITS["ops"], "ActiveState") != "active"
    stopped_at = time.monotonic()
    # Nobody runs the reconciler from here on: only the timer can bring the gateway back.
    while unit_prop(c, UNITS["ops"], "ActiveState") != "active":
        if time.monotonic() - stopped_at > 120:
            journal = c.run(["journalctl", "--no-pager", "-n", "80"], check=False).stdout
            raise AssertionError(f"the timer did not restart {UNITS['ops']}\n{journal}")
        time.sleep(1)
    answers(c, PORTS["ops"])

    # The gateway answers before the timer's run has re-probed and recorded itself: wait for
    # the record (reading it at once raced with a slow re-probe on a loaded machine).
    restarts: list[dict[str, Any]] = []
    records: list[dict[str, Any]] = []
    while not restarts and time.monotonic() - stopped_at < 180:
        runs = c.run(["cat", f"{HOME}/.local/state/reconciler/runs.jsonl"], check=False)
        records = [json.loads(line) for line in runs.stdout.splitlines() if line.strip()]
        restarts = [r for r in records if "profile[ops].service" in r.get("drift", [])]
        if not restarts:
            time.sleep(1)
    assert restarts, f"no run record shows the repair: {records}"
    assert restarts[-1]["result"] == "converged", restarts[-1]
    # And the host is back where the spec says: nothing left to do.
    r = c.run(
        ["reconciler", "plan", "/etc/reconciler/host.yaml", "--detailed-exitcode"], check=False
    )
    assert r.returncode == 0, show(r)

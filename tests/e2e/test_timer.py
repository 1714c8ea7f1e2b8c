"""Issues 7 and 12 against real systemd: the reconciler installed on the host from its wheel (as
README says: pipx), applied as root, installs a timer that runs that installed command and puts a
drifted host back by itself."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from .harness import Container
from .images import VENV
from .test_scenarios import HOME, PORTS, UNITS, answers, apply, install_spec, show, unit_prop

TIMER_SPEC = """
reconcile:
  timer: {enabled: true, interval: 15s, on_boot: 5s, randomized_delay: 0s}
"""

# A system-wide pipx install: root-owned, readable by the user whose timer runs it. The container
# has no network: every pip call pipx makes installs from the image's wheelhouse.
PIPX_ENV = {
    "PIPX_HOME": "/opt/pipx",
    "PIPX_BIN_DIR": "/usr/local/bin",
    "PIP_NO_INDEX": "1",
    "PIP_FIND_LINKS": "/opt/wheels",
}
INSTALLED = "/opt/pipx/venvs/reconciler/bin/reconciler"


def pipx_install(c: Container, wheel: Path) -> float:
    """`pipx install` the wheel (as README says), its dependencies from the image's wheelhouse."""
    c.write_file(f"/root/{wheel.name}", wheel.read_bytes())
    # The image's own `reconciler` (a wrapper around the /src checkout) would shadow pipx's.
    c.run(["rm", "-f", "/usr/local/bin/reconciler"])
    t0 = time.monotonic()
    r = c.run(
        [
            "pipx",
            "install",
            "--pip-args=--no-index --find-links /opt/wheels",
            f"/root/{wheel.name}",
        ],
        env=PIPX_ENV,
        check=False,
        timeout=300,
    )
    took = time.monotonic() - t0
    assert r.returncode == 0, show(r)
    assert c.run(["readlink", "-f", "/usr/local/bin/reconciler"]).stdout.strip() == INSTALLED
    return took


def run_records(c: Container) -> list[dict[str, Any]]:
    path = f"{HOME}/.local/state/reconciler/runs.jsonl"
    if not c.exists(path):
        return []
    return [json.loads(line) for line in c.read_file(path).splitlines() if line.strip()]


def test_installed_with_pipx_the_timer_runs_that_install_and_repairs_the_host(
    container: Container, reconciler_wheel: Path
) -> None:
    c = container
    took = pipx_install(c, reconciler_wheel)
    print(f"pipx install in the container: {took:.1f} s")
    install_spec(c, extra=TIMER_SPEC)
    apply(c)  # as root, with pipx's reconciler: gateways, linger, serve, and the user's timer
    assert unit_prop(c, "reconciler.timer", "ActiveState") == "active"
    assert unit_prop(c, "reconciler.timer", "UnitFileState") == "enabled"
    exec_start = unit_prop(c, "reconciler.service", "ExecStart")
    assert f"path={INSTALLED} ; argv[]={INSTALLED} apply /etc/reconciler/host.yaml --yes" in (
        exec_start
    ), exec_start
    assert VENV not in exec_start and "/src" not in exec_start

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

    # The gateway answers before that run ends (its health check, then the record): wait for it.
    restarts: list[dict[str, object]] = []
    while not restarts:
        if time.monotonic() - stopped_at > 180:
            raise AssertionError(f"no run record shows the repair: {run_records(c)}")
        time.sleep(1)
        restarts = [r for r in run_records(c) if "profile[ops].service" in r.get("drift", [])]
    assert restarts[-1]["result"] == "converged", restarts[-1]
    # That run was the installed command's, and it exited 0.
    while unit_prop(c, "reconciler.service", "ActiveState") == "activating":
        time.sleep(0.5)
    assert unit_prop(c, "reconciler.service", "ExecMainStatus") == "0"
    # And the host is back where the spec says: nothing left to do.
    r = c.run(
        ["reconciler", "plan", "/etc/reconciler/host.yaml", "--detailed-exitcode"], check=False
    )
    assert r.returncode == 0, show(r)

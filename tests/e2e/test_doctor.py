"""`reconciler doctor` under real systemd and logind (stand-in gateway, fake `tailscale`): healthy
after apply, then one broken link at a time, each named with its fix."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from .harness import Container
from .test_scenarios import SPEC_PATH, UNITS, converge, reconciler, show

pytestmark = pytest.mark.e2e


def doctor(c: Container, *args: str) -> tuple[int, dict[str, Any]]:
    r = reconciler(c, "doctor", SPEC_PATH, "--format", "json", *args)
    try:
        return r.returncode, json.loads(r.stdout)
    except json.JSONDecodeError:
        raise AssertionError(f"doctor --format json printed no JSON\n{show(r)}") from None


def broken_link(doc: dict[str, Any], profile: str) -> dict[str, Any]:
    (found,) = [p for p in doc["profiles"] if p["profile"] == profile]
    links = found["links"]
    assert [x["ok"] for x in links] == [True] * (len(links) - 1) + [False], links
    return links[-1]  # type: ignore[no-any-return]


def test_doctor_names_each_broken_link(container: Container) -> None:
    c = container
    converge(c)
    code, doc = doctor(c)
    assert (code, doc["healthy"]) == (0, True), doc
    (personal,) = [p for p in doc["profiles"] if p["profile"] == "personal"]
    assert personal["url"].startswith("https://") and personal["url"].endswith(".ts.net/")

    # 1. The unit stopped behind our back.
    c.systemctl_user("stop", UNITS["ops"])
    code, doc = doctor(c)
    link = broken_link(doc, "ops")
    assert code == 1 and link["link"] == "active", doc
    assert (
        link["fix"]
        == f"sudo -u user XDG_RUNTIME_DIR=/run/user/1000 systemctl --user start {UNITS['ops']}"
    )
    assert [p["healthy"] for p in doc["profiles"]] == [False, True]  # ops, personal
    c.systemctl_user("start", UNITS["ops"])
    c.wait_port(18809, timeout=30)

    # 2. The serve entry of personal removed.
    c.run(["tailscale", "serve", "--https=443", "off"])
    code, doc = doctor(c, "--profile", "personal")
    link = broken_link(doc, "personal")
    assert code == 1 and link["link"] == "serve", doc
    assert "reconciler apply /etc/reconciler/host.yaml" in link["fix"]

    # 3. A crash loop: the unit's program exits 1 at once; systemd keeps restarting it.
    converge(c)
    dropin = f"/home/user/.config/systemd/user/{UNITS['ops']}.d"
    c.run(["mkdir", "-p", dropin], user="user")
    c.write_file(
        f"{dropin}/crash.conf",
        "[Unit]\nStartLimitIntervalSec=0\n[Service]\nExecStart=\n"
        "ExecStart=/bin/sh -c 'echo boom: config invalid; exit 1'\nRestartSec=1\n",
        mode=0o644,
    )
    c.run(["chown", "-R", "user:user", dropin])
    c.systemctl_user("daemon-reload")
    c.systemctl_user("restart", UNITS["ops"], check=False)
    # A loop is a loop once systemd has restarted the unit: on a loaded machine the first
    # restart (RestartSec=1) can come after doctor's probe, which then sees it only inactive.
    deadline = time.monotonic() + 60
    while int(c.systemctl_user("show", "-p", "NRestarts", "--value", UNITS["ops"]).stdout or 0) < 2:
        assert time.monotonic() < deadline, "systemd never restarted the crashing unit"
        time.sleep(0.5)
    code, doc = doctor(c, "--profile", "ops")
    link = broken_link(doc, "ops")
    assert code == 1 and link["link"] == "restarts", doc
    assert "exit status 1" in link["detail"] and "boom: config invalid" in link["log"], link

"""A converged plan costs the same number of subprocesses whatever the number of profiles.

The timer plans every few minutes and admins plan fleets: the cost of a plan must not grow with
the profiles (issue 23). Counted, not timed: the commands the real engine ran against a
converged fake host, from the fake tools' own call log (a timing would flake on a loaded
machine; bench/container_compare.py --profiles N measures the time).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import engine_on_fakehost as drive
from fakehost import FakeHost

from reconciler.spec.model import (
    GatewayRuntime,
    Host,
    Node,
    Profile,
    Runtime,
    ServeEntry,
    Spec,
    Tailscale,
)


def seed_like(profiles: int) -> Spec:
    """specs/vm102.yaml's shape (node range, pinned gateway, linger, operator, two served
    profiles) with `profiles` profiles."""
    names = ["ops", "personal", *(f"p{i:02d}" for i in range(3, profiles + 1))][:profiles]
    return Spec(
        host=Host("vm102", "user"),
        runtime=Runtime(Node(range=">=22.12"), GatewayRuntime("clawdbot", version="2026.1.24-3")),
        profiles=tuple(Profile(name, 18789 + 20 * i) for i, name in enumerate(names)),
        linger=True,
        tailscale=Tailscale(
            operator="user",
            serve=(ServeEntry(443, profile="personal"), ServeEntry(8443, profile="ops")),
        ),
        path=Path("/srv/hostspec/vm102.yaml"),
    )


def converged_plan_calls(profiles: int) -> list[str]:
    """The commands one plan runs on a host converged for the spec (their first three words:
    systemctl's list of units grows with the profiles, its count must not)."""
    spec = seed_like(profiles)
    with tempfile.TemporaryDirectory(prefix="plan-cost-") as tmp, FakeHost(Path(tmp)) as fake:
        fake.allow_sudo(True)
        fake.set_node("v22.12.0")
        fake.set_gateway("2026.1.24-3")
        host = drive.host_context(fake, "user")
        assert drive.apply(fake, spec, host).ok
        fake.clear_calls()
        plan = drive.plan(fake, spec, host)
        assert not plan.runnable  # converged: this is the timer's everyday plan
        return sorted(" ".join(c["argv"][:3]) for c in fake.calls())


def test_a_converged_plan_runs_the_same_commands_for_2_and_10_profiles() -> None:
    two, ten = converged_plan_calls(2), converged_plan_calls(10)
    assert two == ten
    # what docs/testing.md promises: one `systemctl --user show` for every unit, one call of
    # each tailscale read, one `--version` each (files, linger, listeners are read in-process)
    assert two == [
        "clawdbot --version",
        "node --version",
        "systemctl --user show",
        "tailscale debug prefs",
        "tailscale serve status",
        "tailscale status --json",
    ]

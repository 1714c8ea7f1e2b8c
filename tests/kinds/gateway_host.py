"""A fake host wired for the gateway-profile kinds: HostContext, runner, plan and apply.

The spec's user is given our own uid so that the runner's file operations need no privilege
switch (the suite may run as root or not); the fake tools still see the caller "user".
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import engine_on_fakehost as drive
from fakehost import FakeHost

from reconciler.app.plan_pass import Probed, probe_and_plan
from reconciler.core.kind import ResourceKind
from reconciler.core.plan import Plan
from reconciler.kinds import all_kinds
from reconciler.shell.apply import ApplyResult, apply_plan
from reconciler.spec.model import GatewayRuntime, Host, Node, Profile, Runtime, Spec

# Every registered kind: the specs here leave Tailscale and the timer alone, so those plan nothing.
KINDS: tuple[ResourceKind, ...] = all_kinds()


def gateway_spec(*profiles: Profile, **kw: Any) -> Spec:
    return Spec(
        host=Host("vm102", "user"),
        runtime=Runtime(
            node=Node(range=">=22.12"), gateway=GatewayRuntime("clawdbot", start_timeout_s=2)
        ),
        profiles=profiles or (Profile("ops", 18809), Profile("personal", 18789)),
        **kw,
    )


class GatewayHost:
    def __init__(self, tmp_path: Path, *, linger: bool = True) -> None:
        self.fake = FakeHost(tmp_path)
        if linger:
            self.fake.set_linger(self.fake.user, True)
        self.host = drive.host_context(self.fake, "user")
        self.runner = drive.host_runner(self.fake, self.host)

    @property
    def home(self) -> Path:
        return self.fake.home

    def probe(self, spec: Spec) -> Probed:
        return probe_and_plan(spec, self.host, self.runner, KINDS)

    def plan(self, spec: Spec) -> Plan:
        return self.probe(spec).plan

    def apply(self, spec: Spec) -> ApplyResult:
        plan = self.plan(spec)
        assert not plan.errors, plan.errors
        return apply_plan(plan, self.runner)

    def converge(self, spec: Spec) -> Plan:
        """Apply once; the next plan must have nothing left to run."""
        result = self.apply(spec)
        assert result.ok, [(o.action.address, o.outcome, o.detail) for o in result.outcomes]
        after = self.plan(spec)
        assert not after.runnable, [a.address for a in after.runnable]
        assert not after.errors, after.errors
        return after


def addresses(plan: Plan) -> list[str]:
    return [a.address for a in plan.actions]

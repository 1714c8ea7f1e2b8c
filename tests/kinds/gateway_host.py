"""A fake host wired for the gateway-profile kinds: HostContext, runner, plan and apply.

The spec's user is given our own uid so that the runner's file operations need no privilege
switch (the suite may run as root or not); the fake tools still see the caller "user".
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from fakehost import FakeHost

from reconciler.engine.apply import ApplyResult, apply_plan
from reconciler.engine.host import Account, HostContext
from reconciler.engine.kind import ResourceKind
from reconciler.engine.plan import Plan
from reconciler.engine.runner import HostRunner
from reconciler.engine.session import Probed, probe_and_plan
from reconciler.kinds.gateway_config import GatewayConfigKind
from reconciler.kinds.gateway_service import GatewayServiceKind
from reconciler.kinds.gateway_unit import GatewayUnitKind
from reconciler.kinds.legacy_units import LegacyUnitsKind
from reconciler.kinds.linger import LingerKind
from reconciler.kinds.profile_state import ProfileStateKind
from reconciler.kinds.runtime import RuntimeKind
from reconciler.spec.model import GatewayRuntime, Host, Profile, Runtime, Spec

KINDS: tuple[ResourceKind, ...] = (
    RuntimeKind(),
    LingerKind(),
    ProfileStateKind(),
    GatewayConfigKind(),
    GatewayUnitKind(),
    LegacyUnitsKind(),
    GatewayServiceKind(),
)


def gateway_spec(*profiles: Profile, **kw: Any) -> Spec:
    return Spec(
        host=Host("vm102", "user"),
        runtime=Runtime(node=">=22.12", gateway=GatewayRuntime("clawdbot", start_timeout_s=2)),
        profiles=profiles or (Profile("ops", 18809), Profile("personal", 18789)),
        **kw,
    )


class GatewayHost:
    def __init__(self, tmp_path: Path, *, linger: bool = True) -> None:
        self.fake = FakeHost(tmp_path)
        if linger:
            self.fake.set_linger(self.fake.user, True)
        account = Account(self.fake.user, os.getuid(), os.getgid(), self.fake.home)
        self.host = HostContext(
            hostname="vm102",
            invoker=account,
            user=account,
            user_name=self.fake.user,
            linger_dir=self.fake.linger_dir,
            proc_root=self.fake.proc_root,
            search_path=tuple(self.fake.env["PATH"].split(":")),
        )
        self.runner = HostRunner(
            self.host, env=self.fake.env, port_answers=self.answers, sleep=lambda _: None
        )

    @property
    def home(self) -> Path:
        return self.fake.home

    def answers(self, port: int) -> bool:
        return any(lst["port"] == port for lst in self.fake.listeners())

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

"""What an action needs of systemd and the user's manager, decided once by the planner
(core/needs.py with the rules of kinds/_systemd.py), never by a kind (issue 19 item 4).

The pure part plans a small kind of this file's own; the sweep plans every registered kind on a
fake host with systemd down, the manager down, and the manager started by the plan's linger
step, and checks every action that talks to systemd, whichever kind planned it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from kinds.gateway_host import GatewayHost, gateway_spec
from kinds.helpers import ROOT, USER, facts, make_host, make_spec

from reconciler.core.action import (
    Action,
    EnsureDirectory,
    GatedSwitch,
    Handler,
    KindPlan,
    Operation,
    PlanView,
    RemoveFile,
    RemoveTree,
    RunCommand,
    WriteFile,
)
from reconciler.core.command import Command
from reconciler.core.host import HostContext
from reconciler.core.kind import NEEDS_USER, NO_FACTS, Kind
from reconciler.core.needs import needs_of
from reconciler.core.plan import Plan, build_plan, gated_plan
from reconciler.core.probe import Facts, Probe
from reconciler.facts.systemd import (
    LingerProbe,
    SystemdProbe,
    SystemdState,
    UnitStatus,
    UnitStatusProbe,
    unreachable,
)
from reconciler.gateway.paths import unit_dir
from reconciler.kinds._systemd import systemctl
from reconciler.spec.model import Spec
from reconciler.spec.sections.reconcile.model import Reconcile, Timer

DOWN = "the user's systemd manager is not running (no linger and no login session)"
UNIT = "thing.service"


class _Units(Kind):
    """A kind that writes a unit, starts it (with a handler's reload) and does something
    that needs neither systemd nor the manager; it checks no need itself."""

    name = "test.units"
    needs = NEEDS_USER

    def __init__(self, own_block: str | None = None) -> None:
        self.own_block = own_block

    def desired(self, spec: Spec, home: Path) -> dict[str, Any]:
        return {}

    def probes(
        self, spec: Spec, host: HostContext, found: Facts = NO_FACTS
    ) -> Iterable[Probe[Any]]:
        return ()

    def plan(self, spec: Spec, host: HostContext, facts: Facts) -> KindPlan:
        path = unit_dir(host) / UNIT
        write = Action(
            "thing.unit", "create", "a unit", (WriteFile(path, "[Unit]\n", 0o644, "user"),)
        )
        start = Action(
            "thing.service",
            "create",
            "start it",
            (systemctl("start", UNIT),),
            depends_on=("thing.unit",),
            blocked=self.own_block,
        )
        plain = Action(
            "thing.file", "create", "a file", (WriteFile(Path("/home/user/x"), "", 0o600),)
        )

        def reload(view: PlanView) -> KindPlan:
            return KindPlan(
                actions=(Action("thing.reload", "update", "reload", (systemctl("daemon-reload"),)),)
            )

        return KindPlan(actions=(write, start, plain), handlers=(Handler("thing.reload", reload),))


def _plan(
    *,
    systemd: bool = True,
    manager: bool = True,
    linger: bool | None = None,
    lingering: bool = False,
    host: HostContext | None = None,
    kind: Kind | None = None,
) -> dict[str, Action]:
    status = UnitStatus(UNIT, load_state="loaded") if manager else unreachable(UNIT, DOWN)
    values: dict[Probe[Any], Any] = {
        SystemdProbe(): SystemdState(systemd, "systemd" if systemd else "tini"),
        UnitStatusProbe(UNIT): status,
        LingerProbe("user"): lingering,
    }
    plan = build_plan(
        make_spec(linger=linger), host or make_host(), facts(values), [kind or _Units()]
    )
    assert not plan.errors, plan.errors
    return {a.address: a for a in plan.actions}


def test_with_systemd_and_the_manager_nothing_is_added() -> None:
    actions = _plan()
    assert all(a.blocked is None for a in actions.values())
    assert actions["thing.service"].depends_on == ("thing.unit",)


def test_without_systemd_every_systemd_step_is_blocked_and_the_rest_runs() -> None:
    actions = _plan(systemd=False, manager=False, linger=True)
    reason = "systemd is not running on this host (PID 1 is tini)"
    for address in ("thing.unit", "thing.service", "thing.reload"):
        assert actions[address].blocked == reason, address
    # systemd down: the manager's linger order is not even asked for
    assert "linger" not in actions["thing.service"].depends_on
    assert actions["thing.file"].blocked is None


def test_a_plan_that_turns_linger_on_orders_the_manager_steps_after_it() -> None:
    actions = _plan(manager=False, linger=True, lingering=False)
    for address in ("thing.service", "thing.reload"):
        assert actions[address].blocked is None
        assert actions[address].depends_on[-1] == "linger", address
    # a unit file needs systemd, not the manager: it is written at once
    assert "linger" not in actions["thing.unit"].depends_on


def test_without_the_manager_and_no_linger_in_the_plan_manager_steps_are_blocked() -> None:
    for linger, lingering in ((None, False), (False, False), (True, True)):
        actions = _plan(manager=False, linger=linger, lingering=lingering)
        expected = f"{DOWN} for user: set linger: true in the spec, or log in as user"
        assert actions["thing.service"].blocked == expected
        assert actions["thing.reload"].blocked == expected
        assert actions["thing.unit"].blocked is None and actions["thing.file"].blocked is None


def test_an_unmet_need_comes_before_the_kinds_own_reason_which_is_kept_otherwise() -> None:
    kind = _Units(own_block="the unit is masked")
    assert _plan(kind=kind)["thing.service"].blocked == "the unit is masked"
    blocked = _plan(kind=_Units(own_block="the unit is masked"), systemd=False)
    assert blocked["thing.service"].blocked == "systemd is not running on this host (PID 1 is tini)"


def test_acting_as_the_user_is_asked_first() -> None:
    other = replace(USER, name="admin", uid=1001)
    host = make_host(invoker=other)
    actions = _plan(host=host, systemd=False)
    for address in ("thing.unit", "thing.service", "thing.reload"):
        assert (actions[address].blocked or "").startswith(
            "changes user's files and services; we are admin"
        )
    assert _plan(host=make_host(invoker=ROOT))["thing.service"].blocked is None


def test_linger_needs_the_user_and_systemd_in_that_order() -> None:
    from reconciler.kinds.linger import LingerKind

    values = {LingerProbe("user"): False, SystemdProbe(): SystemdState(False, "tini")}
    missing = build_plan(
        make_spec(linger=True), make_host(user=None), facts(values), [LingerKind()]
    )
    assert [a.blocked for a in missing.actions] == ["user 'user' does not exist on this host"]


def _op_needs(op: Operation) -> set[str]:
    return set(needs_of(Action("a", "update", "r", (op,)), make_host()))


def test_needs_follow_from_what_an_operation_is() -> None:
    home_unit = unit_dir(make_host()) / UNIT
    assert _op_needs(systemctl("restart", UNIT)) == {"as-user", "systemd", "user-manager"}
    assert _op_needs(RunCommand(Command(("/usr/bin/systemctl", "--user", "stop", UNIT)))) >= {
        "user-manager"
    }
    assert _op_needs(RunCommand(Command(("loginctl", "enable-linger", "user")))) == {"systemd"}
    assert _op_needs(WriteFile(home_unit, "", 0o644, "user")) == {"as-user", "systemd"}
    assert _op_needs(RemoveFile(home_unit)) == {"as-user", "systemd"}
    # system-scope systemctl, files elsewhere: not the user's manager's business
    assert _op_needs(RunCommand(Command(("systemctl", "is-active", "tailscaled")))) == set()
    # ... but a file in the user's home, or one the user is to own, is written as the user
    assert _op_needs(WriteFile(Path("/home/user/.clawdbot/x.json"), "", 0o600, "user")) == {
        "as-user"
    }
    assert _op_needs(RemoveFile(Path("/home/user/.clawdbot/x.json"))) == {"as-user"}
    assert _op_needs(EnsureDirectory(Path("/srv/clawd/ops"), 0o700, "user")) == {"as-user"}
    assert _op_needs(RunCommand(Command(("restic", "init"), scope="user"))) == {"as-user"}
    assert _op_needs(RemoveTree(Path("/home/user/.local/lib/node"), "1.2.3", "user")) == {"as-user"}
    # root's own: a system prefix, a root-owned directory, a system-scope command
    assert _op_needs(RemoveTree(Path("/opt/clawdbot"), "1.2.3", "system")) == set()
    assert _op_needs(EnsureDirectory(Path("/var/lib/prometheus/x"), 0o755)) == set()
    assert _op_needs(RunCommand(Command(("tailscale", "set", "--operator=user")))) == set()


# --- the sweep: every registered kind, on a fake host -------------------------------------------


def _talks_to_manager(action: Action) -> bool:
    return any(
        isinstance(op, GatedSwitch)
        or (isinstance(op, RunCommand) and op.command.argv[:2] == ("systemctl", "--user"))
        for op in action.operations
    )


def _needs_systemd(action: Action, host: HostContext) -> bool:
    units = unit_dir(host)
    return _talks_to_manager(action) or any(
        (isinstance(op, WriteFile | RemoveFile) and op.path.parent == units)
        or (isinstance(op, RunCommand) and op.command.argv[0] == "loginctl")
        for op in action.operations
    )


TIMER = Timer(True)


def _sweep_spec(timer: Timer = TIMER, **kw: Any) -> Spec:
    """Gateways, the reconcile timer (an installed `reconciler`, as the laws' specs run it),
    unowned gateway units pruned."""
    reconcile = Reconcile(timer=timer, command=("/opt/reconciler/bin/reconciler",))
    spec = gateway_spec(reconcile=reconcile, prune_units=True, **kw)
    return replace(spec, path=Path("/srv/hostspec/vm102.yaml"))


@pytest.fixture
def converged(tmp_path: Path) -> GatewayHost:
    """Gateways, units and the reconcile timer in place, then a gateway unit the spec does not
    own added: the next plans hold unit writes, starts, restarts, a reload and a removal."""
    gw = GatewayHost(tmp_path)
    gw.converge(_sweep_spec(linger=True))
    gw.fake.install_gateway_unit("old", port=19500, product="moltbot", start=False)
    return gw


def _plan_on(gw: GatewayHost, spec: Spec) -> Plan:
    # A changed spec: a third profile's unit, new timer schedule, the legacy unit pruned.
    plan = gw.plan(spec)
    assert not plan.errors, plan.errors
    return plan


def _changed(**kw: Any) -> Spec:
    from reconciler.spec.model import Profile

    base = _sweep_spec(Timer(True, interval_s=1800), **kw)
    return replace(base, profiles=(*base.profiles, Profile("third", 18829)))


def test_every_kind_s_manager_steps_are_blocked_when_the_manager_is_down(
    converged: GatewayHost,
) -> None:
    converged.fake.set_linger(converged.fake.user, False)
    converged.fake.set_session(False)
    plan = _plan_on(converged, _changed(linger=None))
    manager = [a for a in plan.actions if _talks_to_manager(a)]
    assert {a.address.split("[")[0].split(".")[0] for a in manager} >= {
        "profile",
        "reconcile",
        "unit",
    }
    for action in manager:
        assert action.blocked is not None, action.address
        assert "set linger: true in the spec" in action.blocked or "waits for" in action.blocked
    # the files are still written: they need systemd, not a running manager
    writes = [
        a for a in plan.actions if _needs_systemd(a, converged.host) and not _talks_to_manager(a)
    ]
    assert writes and all(a.blocked is None for a in writes), [a.address for a in writes]


def test_every_kind_s_manager_steps_wait_for_the_linger_step_that_starts_it(
    converged: GatewayHost,
) -> None:
    converged.fake.set_linger(converged.fake.user, False)
    converged.fake.set_session(False)
    plan = _plan_on(converged, _changed(linger=True))
    assert any(a.address == "linger" and a.blocked is None for a in plan.actions)
    manager = [a for a in plan.actions if _talks_to_manager(a)]
    assert len(manager) >= 4
    for action in manager:
        assert "linger" in action.depends_on and action.blocked is None, action.address


def test_every_kind_s_systemd_steps_are_blocked_without_systemd(converged: GatewayHost) -> None:
    converged.fake.set_linger(converged.fake.user, False)
    converged.host = replace(converged.host, systemd_dir=converged.fake.root / "no-systemd")
    plan = _plan_on(converged, _changed(linger=True))
    steps = [a for a in plan.actions if _needs_systemd(a, converged.host)]
    assert {a.address for a in steps} >= {"linger", "profile[third].unit"}
    for action in steps:
        assert action.blocked is not None, action.address
        assert action.blocked.startswith("systemd is not running on this host") or (
            "waits for" in action.blocked
        ), action.blocked


def _acts_as_user(action: Action, host: HostContext) -> bool:
    """An operation the runner carries out as the spec's user, told from what it is (this
    test's reading of shell/runner.py, apart from core/needs.py's)."""
    home = host.user.home if host.user is not None else Path("/nonexistent")
    for op in action.operations:
        if isinstance(op, RunCommand) and op.command.scope == "user":
            return True
        if isinstance(op, RemoveTree) and op.scope == "user":
            return True
        if isinstance(op, WriteFile | RemoveFile | EnsureDirectory) and (
            op.path.is_relative_to(home) or getattr(op, "owner", None) == "user"
        ):
            return True
    return _talks_to_manager(action)


def test_every_kind_s_steps_as_the_user_are_blocked_for_an_account_that_cannot_act_as_them(
    converged: GatewayHost,
) -> None:
    # No kind asks whether we may act as the user (no `user_blocker` left in kinds/): the
    # planner derives it from the operations, so a new profile's state, workspace, config and
    # unit are blocked with one reason, and nothing that is root's or nobody's is.
    admin = replace(USER, name="admin", uid=1001)
    converged.host = replace(converged.host, invoker=admin, sudo_to_user=False)
    assert not converged.host.can_act_for_user
    plan = _plan_on(converged, _changed(linger=True))
    steps = [a for a in plan.actions if _acts_as_user(a, converged.host)]
    assert {a.address for a in steps} >= {
        "profile[third].state",
        "profile[third].workspace",
        "profile[third].config",
        "profile[third].unit",
    }
    for action in steps:
        assert (action.blocked or "").startswith(
            "changes user's files and services; we are admin"
        ) or "waits for" in (action.blocked or ""), (action.address, action.blocked)


def test_a_plan_built_outside_the_kinds_gets_the_same_gates() -> None:
    # `gated_plan` (a rollback's): the actions a kind would plan, gated as build_plan gates
    # them; a need only a whole plan's linger step would meet blocks, since it is not held.
    def gated(*, linger: bool | None, host: HostContext | None = None) -> dict[str, Action]:
        status = unreachable(UNIT, DOWN)
        values: dict[Probe[Any], Any] = {
            SystemdProbe(): SystemdState(True, "systemd"),
            UnitStatusProbe(UNIT): status,
            LingerProbe("user"): False,
        }
        spec, host = make_spec(linger=linger), host or make_host()
        raw = _Units().plan(spec, host, facts(values)).actions
        return {a.address: a for a in gated_plan(spec, host, facts(values), raw).actions}

    whole = _plan(manager=False)
    alone = gated(linger=None)
    assert alone["thing.service"].blocked == whole["thing.service"].blocked is not None
    assert alone["thing.unit"].blocked is None
    started = gated(linger=True)["thing.service"]
    assert started.blocked == "waits for linger, which only `reconciler apply` plans: run it first"
    admin = make_host(invoker=replace(USER, name="admin", uid=1001))
    assert (gated(linger=None, host=admin)["thing.file"].blocked or "").startswith(
        "changes user's files and services; we are admin"
    )

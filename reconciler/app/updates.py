"""Gateway updates: `update` (apply, after forgetting the bad-version marks asked for) and
`rollback` (switch a profile back behind the same health gate).

A version whose health-gated switch failed is marked bad for its profile in the reconciler's
memory (facts/switches.py): plans show that switch blocked and the timer never retries it.
`update SPEC --retry PROFILE` forgets the mark (and that the version the profile wants failed
to install, facts/switches.py), then applies.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler.app.context import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    AppContext,
    Failed,
)
from reconciler.app.specs import load
from reconciler.frozen import frozen

if TYPE_CHECKING:
    from reconciler.app.applying import ApplyRequest
    from reconciler.core.action import Action, ForgetBadVersion, ForgetFailedInstall, GatedSwitch
    from reconciler.core.host import HostContext
    from reconciler.core.plan import Plan
    from reconciler.core.probe import Facts
    from reconciler.shell.runner import HostRunner, ReadOnlyRunner
    from reconciler.spec.model import Spec


@frozen
class UpdateRequest:
    """`reconciler update SPEC [--retry PROFILE]...` and the apply it runs."""

    retry: tuple[str, ...]
    apply: ApplyRequest


def check_profiles(spec: Spec, names: tuple[str, ...], option: str) -> None:
    """Failed (usage) naming the profiles the spec has, for a name it does not."""
    from reconciler.app.specs import profile_named

    for name in names:
        profile_named(spec, spec.path or "the spec", name, option)


def forget_marks(
    ctx: AppContext, host: HostContext, runner: HostRunner, spec: Spec, profiles: tuple[str, ...]
) -> None:
    """Forget each profile's bad-version mark (`ForgetBadVersion`, which the runner carries
    out as the spec's user), saying what was forgotten."""
    from reconciler.core.action import ForgetBadVersion
    from reconciler.facts.switches import SwitchMemoryProbe, memory_dir

    assert host.user is not None
    memory = memory_dir(host.user.home)
    known = SwitchMemoryProbe(memory).read(host)
    for name in profiles:
        mark = next((m for m in known.bad if m.profile == name), None)
        _forget(spec, host, runner, ForgetBadVersion(memory, name), f"memory.bad_version[{name}]")
        if mark is None:
            ctx.echo(f"profile {name}: no version is marked bad; applying as usual")
        else:
            ctx.echo(
                f"profile {name}: forgot that {mark.version} failed its health check at "
                f"{mark.failed_at}; this apply tries it again"
            )


def forget_failed_installs(
    ctx: AppContext, host: HostContext, runner: HostRunner, spec: Spec, profiles: tuple[str, ...]
) -> None:
    """Forget that the versions (and nodes) these profiles want failed to install (`ForgetFailedInstall`,
    as the spec's user): the apply tries them again."""
    from reconciler.core.action import ForgetFailedInstall
    from reconciler.facts.switches import memory_dir
    from reconciler.gateway.node import profile_node
    from reconciler.gateway.versions import profile_version
    from reconciler.shell.memory import FORGOTTEN

    assert host.user is not None
    memory = memory_dir(host.user.home)
    chosen = [p for p in spec.profiles if p.name in profiles]
    # The gateway versions they want and the nodes they run (installed the same way).
    wanted = (v(spec, p) for p in chosen for v in (profile_version, profile_node))
    for version in dict.fromkeys(v for v in wanted if v is not None):
        forget = ForgetFailedInstall(memory, version)
        if _forget(spec, host, runner, forget, f"memory.failed_install[{version}]") == FORGOTTEN:
            ctx.echo(f"forgot that {version} failed to install; this apply tries it again")


def _forget(
    spec: Spec,
    host: HostContext,
    runner: HostRunner,
    operation: ForgetBadVersion | ForgetFailedInstall,
    address: str,
) -> str:
    """Carry out one forget through the runner: its detail, or Failed saying why not. Gated as
    every planned action is (`gated_plan`: the memory is the user's, so we must be able to
    act as the user): blocked, it is not run, and the reason is the one a plan gives."""
    from reconciler.core.action import Action
    from reconciler.core.kind import NO_FACTS
    from reconciler.core.plan import gated_plan

    action = Action(address, "delete", "forget a mark (update --retry)", (operation,))
    # Forgetting needs only the user and acting as the user: no fact is read to decide it.
    (gated,) = gated_plan(spec, host, NO_FACTS, (action,)).actions
    if gated.blocked:
        raise Failed(f"cannot forget the mark: {gated.blocked}")
    done = runner.execute(operation)
    if not done.ok:
        raise Failed(f"cannot forget the mark: {done.detail}")
    return done.detail


def update(ctx: AppContext, request: UpdateRequest) -> int:
    """Forget the marks of `--retry` profiles, then apply (see `apply`'s exit codes)."""
    from reconciler.app.applying import apply
    from reconciler.shell.runner import HostRunner

    if request.retry:
        if request.apply.dry_run:
            raise Failed(
                "--retry forgets a mark, and --dry-run changes nothing: run `reconciler plan "
                "SPEC` to see the blocked switch, or drop --dry-run",
                code=EXIT_USAGE,
            )
        spec = load(ctx, request.apply.target)
        check_profiles(spec, request.retry, "--retry")
        host = ctx.discover_host(spec)
        if host.user is None:
            raise Failed(f"user {spec.host.user!r} does not exist on this host", EXIT_FAILED)
        runner = ctx.make_runner(host, True)
        assert isinstance(runner, HostRunner)  # forgetting writes: never a read-only runner
        forget_marks(ctx, host, runner, spec, request.retry)
        forget_failed_installs(ctx, host, runner, spec, request.retry)
    return apply(ctx, request.apply)


# --- rollback ------------------------------------------------------------------------------------


@frozen
class RollbackRequest:
    """`reconciler rollback SPEC PROFILE [--to VERSION]`."""

    spec_path: Path
    profile: str
    to: str | None = None
    yes: bool = False
    host_check: bool = True
    lock_timeout: float = 0.0


def rollback(ctx: AppContext, request: RollbackRequest) -> int:
    """Switch one profile back to an installed version behind the same health gate as an
    update, then mark the version it left as bad for that profile (the spec still pins it: the
    timer and `apply` would otherwise switch straight back). Both are one planned action the
    runner carries out (`GatedSwitch`, then `MarkBadVersion` as the spec's user). Exit 0 rolled
    back (or already there), 1 failed (the gate restored what ran before), 75 locked."""
    from reconciler.app.host_lock import host_lock
    from reconciler.app.planning import probe_plan
    from reconciler.core.host import Account
    from reconciler.gateway.versions import is_version, versioned

    if request.to is not None and not is_version(request.to):
        # Checked first: `--to ''` once fell back to the default target, silently.
        raise Failed(f"--to {request.to!r}: not an exact version (like 2026.1.24-3)", EXIT_USAGE)
    spec = load(ctx, request.spec_path)
    check_profiles(spec, (request.profile,), "PROFILE")
    if not versioned(spec):
        raise Failed(
            "rollback switches between versions installed side by side: the spec needs "
            "runtime.gateway.install: versioned and a pinned version"
        )
    owner = Account.lookup(spec.host.user)
    with host_lock(ctx, owner, "rollback", request.lock_timeout):
        host, runner, probed = probe_plan(ctx, spec, request.host_check, mutating=True)
        planned = _rollback_plan(ctx, spec, host, probed.facts, request)
        if planned is None:
            return EXIT_OK
        plan, running, target = planned
        (action,) = plan.actions
        ctx.echo(f"{action.address}: {action.reason}")
        if not request.yes and not ctx.agrees(
            f"Switch profile {request.profile} from {running} to {target}?"
        ):
            ctx.echo("Nothing changed.")
            return EXIT_OK
        return _run_rollback(ctx, spec, runner, plan, running, target)


def _rollback_plan(
    ctx: AppContext, spec: Spec, host: HostContext, facts: Facts, request: RollbackRequest
) -> tuple[Plan, str, str] | None:
    """(the rollback's plan, the running version, the target), None when it already runs the
    target. The plan is one action: the unit kind's switch to the target, chosen by hand
    (`plan_switch`: the spec is not touched), then the mark on the version it leaves, gated
    as `build_plan` gates every action (`gated_plan`); Failed when it is blocked."""
    from dataclasses import replace

    from reconciler.core.action import Action, MarkBadVersion
    from reconciler.core.plan import gated_plan
    from reconciler.facts.files import read_as_user, read_path
    from reconciler.facts.profile_files import unit_probe
    from reconciler.facts.switches import memory_dir
    from reconciler.gateway.addresses import unit_address
    from reconciler.gateway.paths import profile_paths
    from reconciler.gateway.versions import entry_point, is_version, prefix_path, version_in_exec
    from reconciler.kinds._switch import switch_memory
    from reconciler.kinds._systemd import systemctl
    from reconciler.kinds.gateway_unit import plan_switch

    assert host.user is not None
    profile = next(p for p in spec.profiles if p.name == request.profile)
    paths = profile_paths(spec, profile, host)
    prefix = prefix_path(spec, host.user.home)
    text = facts.get(unit_probe(paths)).text or ""
    exec_line = next((ln for ln in text.splitlines() if ln.startswith("ExecStart=")), "")
    running = version_in_exec(exec_line, prefix)
    if running is None:
        raise Failed(
            f"profile {request.profile}'s unit ({paths.unit_file}) runs no version installed "
            f"under {prefix}: nothing to roll back from (run `reconciler apply` first)"
        )
    memory = switch_memory(host, facts)
    last = memory.last_switch(request.profile)
    default = last.from_version if last and last.to_version == running else None
    target = request.to if request.to is not None else default
    if target is None:
        raise Failed(
            f"no earlier version of profile {request.profile} is known: name one with "
            "--to VERSION (`reconciler versions SPEC` lists the installed ones)",
            EXIT_USAGE,
        )
    if not is_version(target):
        raise Failed(f"--to {target}: not an exact version (like 2026.1.24-3)", EXIT_USAGE)
    if target == running:
        ctx.echo(f"profile {request.profile} runs {running} already; nothing to do")
        return None
    entry = entry_point(spec, prefix, target)
    if read_as_user(host, partial(read_path, entry)).kind != "file":
        raise Failed(
            f"{target} is not installed ({entry} is missing): roll back only to an installed "
            "version; nothing was changed"
        )
    # By hand, a version marked bad may be chosen: the gate still checks it.
    action = plan_switch(spec, profile, host, facts, target)
    switch = _switch_of(action)
    if action is None or switch is None:
        # Whether it runs is the user's manager's to say: a rollback restarts the unit, so
        # when that step is blocked (the manager down, ...), the plan's reason is the answer.
        restart = Action(
            unit_address(profile.name), "update", "", (systemctl("restart", paths.unit),)
        )
        (checked,) = gated_plan(spec, host, facts, (restart,)).actions
        if checked.blocked:
            raise Failed(f"{checked.address}: {checked.blocked}")
        raise Failed(
            f"profile {request.profile}'s gateway is not running: start it (`reconciler "
            "apply`) before rolling it back"
        )
    if switch.replaces is not None:
        # The unit kind plans the product move still due (kinds/_move.py), to the pinned
        # version: that is apply's to finish, not a rollback.
        raise Failed(
            f"profile {request.profile} still has a move from {switch.replaces} to finish: "
            "run `reconciler apply` first, then roll back"
        )
    mark = MarkBadVersion(
        memory_dir(host.user.home),
        profile.name,
        running,
        ctx.timestamp(),
        f"rolled back by hand to {target} (reconciler rollback)",
    )
    # Last in the action: the runner stops at a failed operation, so only a switch that
    # stayed marks the version it left. Through the planner's gates (the user, acting as
    # them, systemd, the user's manager), as every planned action: blocked as a plan says.
    plan = gated_plan(spec, host, facts, (replace(action, operations=(*action.operations, mark)),))
    (gated,) = plan.actions
    if gated.blocked:
        raise Failed(f"{gated.address}: {gated.blocked}")
    return plan, running, target


def _switch_of(action: Action | None) -> GatedSwitch | None:
    from reconciler.core.action import GatedSwitch

    if action is None:
        return None
    return next((op for op in action.operations if isinstance(op, GatedSwitch)), None)


def _run_rollback(
    ctx: AppContext,
    spec: Spec,
    runner: ReadOnlyRunner,
    plan: Plan,
    running: str,
    target: str,
) -> int:
    """Run the rollback's plan (shell/apply.py, as apply runs one); on success say what the
    spec still pins."""
    from reconciler.shell.apply import ActionOutcome, apply_plan
    from reconciler.shell.runner import HostRunner

    assert isinstance(runner, HostRunner)
    (action,) = plan.actions
    switch = _switch_of(action)
    assert switch is not None

    def progress(outcome: ActionOutcome) -> None:
        if outcome.outcome == "failed":
            ctx.error(f"{action.address}: FAILED ({outcome.detail})")
        elif outcome.detail:  # the switch's account of itself
            ctx.echo(f"{action.address}: {outcome.detail}")

    if not apply_plan(plan, runner, progress).ok:
        return EXIT_FAILED
    ctx.echo(
        f"The spec still pins {running} for profile {switch.profile}: it is now marked bad "
        "there, so neither the timer nor `apply` switches back to it. Pin "
        f"{target} in the spec (profiles.{switch.profile}.gateway_version), or run "
        f"`reconciler update {spec.path or 'SPEC'} --retry {switch.profile}` to try "
        f"{running} again."
    )
    return EXIT_OK

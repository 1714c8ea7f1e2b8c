"""The `apply` use case: a spec or a saved plan; dry run, confirmation, convergence, summary.

One meaning of "converged" everywhere: the host matches the spec. Steps left blocked (root-only
steps under a user, a program not installed yet) mean it does not: apply says "Not converged:
N steps blocked" with the reasons grouped, records "not-converged" and exits 2 (EXIT_DIFFERS),
the same code `plan --detailed-exitcode` gives such a host. 1 is kept for errors and failures.
"""

from __future__ import annotations

import sys
from dataclasses import field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler.app.context import (
    EXIT_DIFFERS,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    AppContext,
    Failed,
)
from reconciler.app.planning import probe_plan, show_plan
from reconciler.app.specs import load
from reconciler.frozen import frozen

if TYPE_CHECKING:
    from collections.abc import Callable

    from reconciler.app.remote import Reach, Remote, RemoteHost
    from reconciler.core.host import HostContext
    from reconciler.core.plan import Plan
    from reconciler.review.saved_plan import SavedPlan
    from reconciler.shell.apply import ActionOutcome, Convergence
    from reconciler.shell.runner import HostRunner
    from reconciler.spec.model import Spec
    from reconciler.unattended.logs import ActionLog, LogFormat
    from reconciler.unattended.runs import ApplyOutcome


@frozen
class ApplyRequest:
    """What `reconciler apply` was asked for."""

    target: Path  # a spec, or a saved plan from `plan --out`
    dry_run: bool = False
    yes: bool = False
    non_interactive: bool = False
    lock_timeout: float = 0.0
    log_format: LogFormat = "text"
    git_ref: str | None = None
    host_check: bool = True
    no_color: bool = False
    reach: Reach = field(default_factory=lambda: _local_reach())


def _local_reach() -> Reach:
    from reconciler.app.remote import Reach

    return Reach()


def apply(ctx: AppContext, request: ApplyRequest) -> int:
    """Make this host match the spec (or run the saved plan); see the module docstring."""
    saved = _saved_plan(request.target)
    spec_path = request.target
    if saved is not None:
        if request.git_ref is not None:
            raise Failed(
                "--git-ref applies a spec at a revision; a saved plan names its own spec: "
                "pass one or the other",
                code=EXIT_USAGE,
            )
        if saved.spec_path is None:
            raise Failed(f"{request.target}: the saved plan names no spec file")
        from reconciler.app.review import ReviewError, saved_spec_path

        try:
            spec_path = saved_spec_path(saved)
        except ReviewError as exc:
            raise Failed(str(exc)) from None
    remote = _remote(ctx, request, spec_path)
    if remote is not None:
        return _apply_remote(ctx, request, spec_path, saved, *remote)
    if request.dry_run:
        return dry_run(ctx, request, spec_path, saved)
    from reconciler.app.unattended import unattended_apply

    return unattended_apply(
        spec_path,
        lock_timeout=request.lock_timeout,
        non_interactive=request.non_interactive,
        log_format=request.log_format,
        git_ref=request.git_ref,
        do_apply=lambda spec, log: apply_spec(ctx, request, spec, log, saved),
        ctx=ctx,
    )


def _remote(ctx: AppContext, request: ApplyRequest, spec_path: Path) -> tuple[Spec, Remote] | None:
    """The spec and its remote host when this apply goes over SSH (docs/remote.md); the timer
    (--non-interactive) never does."""
    from reconciler.app.remote import remote_for_path

    if request.non_interactive:
        return None
    return remote_for_path(ctx, spec_path, request.reach, request.host_check)


def _apply_remote(
    ctx: AppContext,
    request: ApplyRequest,
    spec_path: Path,
    saved: SavedPlan | None,
    spec: Spec,
    remote: Remote,
) -> int:
    """apply over SSH: a spec (plan here, run there), or a saved plan run there as it is."""
    from reconciler.app.remote import apply_saved_remote, connected

    if request.git_ref is not None:
        raise Failed(
            "--git-ref with a remote host: check the revision out here and apply that file "
            "(the timer on the host pulls revisions itself)",
            code=EXIT_USAGE,
        )
    if saved is None:
        options = RemoteApply(request.dry_run, request.yes, request.host_check, request.no_color)
        return apply_remote(ctx, spec, remote, options)
    # There the spec travels under the name the plan gives it, relative to the command's folder.
    named = Path(saved.spec_path or "")
    if not saved.spec_path or named.is_absolute() or ".." in named.parts:
        raise Failed(
            f"{request.target}: the plan names its spec as {saved.spec_path}; to run it on "
            f"{remote.label}, make the plan with a relative spec path inside this folder"
        )
    if request.dry_run:
        raise Failed("a saved plan is its own preview: read it with `cat` or `plan --against`")
    from reconciler.bounded import read_bounded
    from reconciler.review.saved_plan import MAX_PLAN_BYTES

    with connected(remote) as connection:
        plan = read_bounded(saved.path, MAX_PLAN_BYTES)  # as it was read (bounded.py)
        return apply_saved_remote(
            ctx, connection, spec, plan, request.host_check, spec_name=named.as_posix()
        ).exit_code


def dry_run(
    ctx: AppContext, request: ApplyRequest, spec_path: Path, saved: SavedPlan | None
) -> int:
    """Show the plan and the exact commands; run none. With --git-ref, of the committed spec
    at REF (fetched first, as the timer does); a bad ref is an error."""
    spec = _revision(ctx, spec_path, request.git_ref) if request.git_ref else load(ctx, spec_path)
    host, runner, probed = probe_plan(ctx, spec, request.host_check, mutating=False)
    if saved is not None:
        _check_fresh(saved, spec, host, probed.plan)
    show_plan(ctx, spec, host, runner, probed, "human", ctx.use_color(request.no_color))
    if probed.plan.errors:
        raise Failed("the plan has errors")
    ctx.echo("Dry run: no command was run that changes the host.")
    return EXIT_OK


def _revision(ctx: AppContext, spec_path: Path, ref: str) -> Spec:
    from reconciler.app.specs import report_invalid
    from reconciler.app.unattended import read_revision, revision_name
    from reconciler.shell.git import SourceError

    try:
        revision, loaded = read_revision(spec_path, ref)
    except SourceError as exc:
        raise Failed(str(exc)) from None
    if revision.fetch_error:
        ctx.error(f"warning: {revision.fetch_error}; showing {revision.name}, fetched before")
    if isinstance(loaded, Exception):
        report_invalid(ctx, loaded)
        ctx.error(f"{revision_name(revision)}: invalid spec; nothing was probed or changed")
        raise Failed()
    ctx.error(f"note: planning {revision_name(revision)} (the committed bytes at {ref})")
    return loaded


def apply_spec(
    ctx: AppContext,
    request: ApplyRequest,
    spec: Spec,
    log: ActionLog | None,
    saved: SavedPlan | None = None,
) -> ApplyOutcome:
    """Probe, plan, confirm, converge; report for humans (log is None) or as log lines.

    With a saved plan, the fresh plan must be the reviewed one (else nothing runs), no
    confirmation is asked (it was reviewed), and only one pass runs: a step that became
    possible only after it was not in the review.
    """
    from reconciler.app.plan_pass import probe_and_plan
    from reconciler.kinds import all_kinds
    from reconciler.shell.runner import HostRunner
    from reconciler.unattended.root_steps import block_root_steps
    from reconciler.unattended.runs import ApplyOutcome, outcome_of

    color = ctx.use_color(request.no_color)
    host, runner, probed = probe_plan(ctx, spec, request.host_check, mutating=True)
    as_root = f"sudo {sys.executable} -m reconciler apply {spec.path}"

    def unprivileged(plan: Plan) -> Plan:
        if not request.non_interactive:
            return plan
        return block_root_steps(plan, host, apply_as_root=as_root)

    plan = unprivileged(probed.plan)
    if saved is not None:
        try:
            _check_fresh(saved, spec, host, probed.plan)
        except Failed as exc:
            ctx.error(f"error: {exc.message}")
            return ApplyOutcome("failed", reason="the saved plan is stale")
    if log is None:
        show_plan(ctx, spec, host, runner, replace(probed, plan=plan), "human", color)
    if plan.errors:
        ctx.error("error: the plan has errors; nothing was changed")
        return outcome_of(plan, None)
    if not plan.runnable:
        _nothing_to_run(ctx, plan, log)
        return outcome_of(plan, None)
    if not (request.yes or request.non_interactive or saved is not None):
        declined = _confirm(ctx, plan)
        if declined is not None:
            return declined
    assert isinstance(runner, HostRunner)
    outcome = _converge(
        ctx,
        plan,
        lambda: unprivileged(probe_and_plan(spec, host, runner, all_kinds()).plan),
        runner,
        log,
        passes=1 if saved is not None else 3,
        color=color,
    )
    if log is None:
        report_convergence(ctx, outcome)
    return outcome_of(plan, outcome)


def _nothing_to_run(ctx: AppContext, plan: Plan, log: ActionLog | None) -> None:
    """Say so when only blocked steps are left: a log line each, or one line for humans."""
    from reconciler.shell.apply import ActionOutcome

    if log is not None:
        for action in plan.blocked:
            log.action(ActionOutcome(action, "blocked", action.blocked or ""))
    elif plan.blocked:
        report_blocked(ctx, plan, reasons=False)  # the plan just shown gave them


def _converge(
    ctx: AppContext,
    plan: Plan,
    replan: Callable[[], Plan],
    runner: HostRunner,
    log: ActionLog | None,
    *,
    passes: int,
    color: bool,
) -> Convergence:
    """Run the plan and what becomes possible after it; progress as log lines or for humans."""
    from reconciler.shell.apply import converge

    if log is not None:
        return converge(plan, replan, runner, log.action, max_passes=passes)
    return converge(
        plan,
        replan,
        runner,
        lambda o: _progress(ctx, o, color),
        max_passes=passes,
        on_pass=lambda n, p: ctx.echo(
            f"Pass {n}: {len(p.runnable)} more step(s) became possible after the last pass."
        ),
    )


def _confirm(ctx: AppContext, plan: Plan) -> ApplyOutcome | None:
    """Ask on a terminal; the outcome of not applying, or None to go on."""
    from reconciler.unattended.runs import ApplyOutcome, outcome_of

    try:
        agreed = ctx.agrees("Apply these changes?")
    except Failed as refused:
        ctx.error(f"error: {refused.message}")
        return ApplyOutcome("failed", reason="not a terminal and no --yes")
    if not agreed:
        ctx.echo("Nothing changed.")
        return outcome_of(plan, None)
    return None


def _progress(ctx: AppContext, outcome: ActionOutcome, color: bool) -> None:
    from reconciler.render.human import render_outcome

    ctx.echo(render_outcome(outcome, color=color), color=color)


def report_blocked(ctx: AppContext, plan: Plan, *, reasons: bool = True) -> None:
    """`Converged`, or `Not converged: N steps blocked` and each distinct reason once."""
    from reconciler.core.blocked import blocked_lines, group_blocked, steps

    blocked = plan.blocked
    if not blocked:
        ctx.echo("Converged: the host matches the spec.")
        return
    if not reasons:
        ctx.echo(f"Not converged: {steps(len(blocked))} blocked (why: above).")
        return
    ctx.echo(f"Not converged: {steps(len(blocked))} blocked, because:")
    for line in blocked_lines(group_blocked(blocked)):
        ctx.echo(line)


def report_convergence(ctx: AppContext, outcome: Convergence) -> None:
    """The closing lines of an interactive apply: counts, then what still differs."""
    after = outcome.final
    ctx.echo(
        f"Apply: {outcome.count('applied')} applied, {outcome.count('failed')} failed, "
        f"{outcome.count('skipped')} skipped, {len(after.blocked)} blocked."
    )
    if after.runnable:
        ctx.error(f"Not converged: {len(after.runnable)} action(s) still pending:")
        for action in after.runnable:
            ctx.error(f"  {action.address}: {action.reason}")
    elif not outcome.ok:
        ctx.error("Not converged: a step failed (see above).")
    else:
        report_blocked(ctx, after)


def _saved_plan(path: Path) -> SavedPlan | None:
    """The saved plan at `path` (from `plan --out`), None when `path` is a spec."""
    from reconciler.review.saved_plan import SavedPlanInvalid, load_saved_plan, reads_as_document

    if not reads_as_document(path):
        return None
    try:
        return load_saved_plan(path)
    except SavedPlanInvalid as exc:
        raise Failed(str(exc), code=EXIT_FAILED) from None


def _check_fresh(saved: SavedPlan, spec: Spec, host: HostContext, plan: Plan) -> None:
    """Refuse (Failed, with Terraform's wording) a saved plan that is not what would run now."""
    from reconciler.review.saved_plan import StalePlan, check_fresh

    try:
        check_fresh(saved, spec.path, spec.sha256, host.hostname, plan, invoker=host.invoker.name)
    except StalePlan as exc:
        raise Failed(str(exc)) from None


# --- remote hosts (docs/remote.md) ---------------------------------------------------------------


@frozen
class RemoteApply:
    """What `apply --target` was asked for (the remote part of ApplyRequest)."""

    dry_run: bool
    yes: bool
    host_check: bool
    no_color: bool
    max_passes: int = 3


def apply_remote(ctx: AppContext, spec: Spec, remote: Remote, request: RemoteApply) -> int:
    """Probe there, plan and confirm here, run the reviewed plan there; again (up to
    `max_passes`) while steps become possible that were blocked on earlier ones.

    Exit codes as `apply`: 0 the host matches the spec, 2 it does not (blocked steps), 1 a
    failure, 75 another apply holds the target's lock.
    """
    from reconciler.app.remote import apply_saved_remote, connected

    code = EXIT_DIFFERS
    with connected(remote, notes=ctx.error) as connection:
        for number in range(1, request.max_passes + 1):
            plan, reviewed = _review_pass(ctx, connection, spec, request, number)
            if reviewed is None and number == 1 and not request.dry_run:
                report_blocked(ctx, plan)
            if reviewed is None and (number > 1 or request.dry_run):
                return code if number > 1 else EXIT_OK
            if reviewed is None:
                return EXIT_DIFFERS if plan.has_changes else EXIT_OK
            code = apply_saved_remote(ctx, connection, spec, reviewed, request.host_check).exit_code
            if code != EXIT_DIFFERS:
                return code
    return code


def _review_pass(
    ctx: AppContext, connection: RemoteHost, spec: Spec, request: RemoteApply, number: int
) -> tuple[Plan, bytes | None]:
    """One pass: the plan, and what to send there (None: nothing left to run, or a dry run)."""
    from reconciler.app.remote import plan_remote, saved_plan_bytes

    host, runner, probed, source = plan_remote(connection, spec, request.host_check)
    plan = probed.plan
    if number == 1:
        color = ctx.use_color(request.no_color)
        show_plan(ctx, spec, host, runner, probed, "human", color, source)
    if plan.errors:
        raise Failed("the plan has errors; nothing was changed")
    if not plan.runnable:
        return plan, None
    if number == 1 and request.dry_run:
        ctx.echo("Dry run: no command was run that changes the host.")
        return plan, None
    if (
        number == 1
        and not request.yes
        and not ctx.agrees(f"Apply these changes on {connection.remote.label}?")
    ):
        ctx.echo("Nothing changed.")
        raise Failed(code=0)
    if number > 1:
        ctx.echo(f"Pass {number}: {len(plan.runnable)} more step(s) became possible.")
    return plan, saved_plan_bytes(spec, host, runner, probed, source)

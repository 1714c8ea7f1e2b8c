"""Read-only use cases: `plan`, `probe`, `diff`, `state-paths`, and the host/plan steps that
`apply` shares with them."""

from __future__ import annotations

from dataclasses import field
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler.app.context import EXIT_DIFFERS, EXIT_OK, EXIT_USAGE, AppContext, Failed
from reconciler.app.specs import load
from reconciler.frozen import frozen

if TYPE_CHECKING:
    from reconciler.app.plan_pass import Probed
    from reconciler.app.remote import Reach, RemoteHost
    from reconciler.app.review import PlanFormat
    from reconciler.core.host import HostContext
    from reconciler.render.plan_context import SnapshotSource
    from reconciler.shell.runner import ReadOnlyRunner
    from reconciler.spec.model import Spec


def host_for(ctx: AppContext, spec: Spec, host_check: bool) -> HostContext:
    """This machine, refusing a spec written for another one unless the check is off."""
    from reconciler.app.plan_pass import HostMismatch, check_host

    host = ctx.discover_host(spec)
    if host_check:
        try:
            check_host(spec, host)
        except HostMismatch as exc:
            raise Failed(str(exc)) from None
    return host


def probe_plan(
    ctx: AppContext, spec: Spec, host_check: bool, *, mutating: bool
) -> tuple[HostContext, ReadOnlyRunner, Probed]:
    """Host check, runner, and one probe-and-plan pass."""
    from reconciler.app.plan_pass import probe_and_plan
    from reconciler.kinds import all_kinds

    host = host_for(ctx, spec, host_check)
    runner = ctx.make_runner(host, mutating)
    return host, runner, probe_and_plan(spec, host, runner, all_kinds())


def show_plan(
    ctx: AppContext,
    spec: Spec,
    host: HostContext,
    runner: ReadOnlyRunner,
    probed: Probed,
    fmt: PlanFormat,
    color: bool,
    snapshot: SnapshotSource | None = None,
) -> None:
    """Print the plan in `fmt` (human, json, markdown)."""
    from reconciler.app.review import describe_command, render
    from reconciler.render.plan_context import plan_context

    context = plan_context(spec, host, probed.probed_at, snapshot)
    text = render(fmt, probed.plan, context, runner, describe_command(runner), color=color)
    ctx.echo(text, color=color and fmt == "human")


def check_out_path(path: Path) -> None:
    """Refuse, before any work, an `--out` we could not write: its folder must exist, and
    nothing but a regular file may stand at the path (never a symlink, FIFO or device node)."""
    from reconciler.shell.files import out_problem

    parent = path.parent
    if path.is_dir() and not path.is_symlink():
        raise Failed(f"cannot write {path}: it is a folder; name a file in it")
    problem = out_problem(path)
    if problem is not None:
        raise Failed(problem)
    if not parent.exists():
        raise Failed(
            f"cannot write {path}: the folder {parent} does not exist; create it first "
            f"(mkdir -p {parent}) or name a file in an existing folder"
        )
    if not parent.is_dir():
        raise Failed(
            f"cannot write {path}: {parent} is a file, not a folder; name a file in a folder"
        )


@frozen
class PlanRequest:
    """What `reconciler plan` was asked for."""

    spec_path: Path
    fmt: str | None = None
    as_json: bool = False
    out: Path | None = None
    against: Path | None = None
    detailed_exitcode: bool = False
    host_check: bool = True
    no_color: bool = False
    reach: Reach = field(default_factory=lambda: _local_reach())


def _local_reach() -> Reach:
    from reconciler.app.remote import Reach

    return Reach()


def plan(ctx: AppContext, request: PlanRequest) -> int:
    """Probe this host (or read a snapshot), print the plan, optionally save it.

    Exit: 1 when the plan has errors; with --detailed-exitcode 2 when the host differs from
    the spec (steps to run or blocked steps), else 0.
    """
    from reconciler.app.review import ReviewError, choose_format, write_saved_plan
    from reconciler.render.plan_context import plan_context

    try:
        chosen = choose_format(request.fmt, request.as_json)
    except ReviewError as exc:
        raise Failed(str(exc), code=EXIT_USAGE) from None
    if request.out is not None:
        check_out_path(request.out)
    early = None
    if request.against is None:
        from reconciler.app.remote import early_connection

        # The handshake runs while the spec is validated (early_connection says why).
        early = early_connection(request.spec_path, request.reach, request.host_check)
    if early is not None:
        from reconciler.spec import validation_cache

        # The host is another machine, so this machine's cache is the admin's, not the host's
        # (the dry-run law is about the host): the next plan of this spec skips validating it.
        validation_cache.allow_writes()
    try:
        spec = load(ctx, request.spec_path)
        host, runner, probed, snapshot = probed_for(ctx, spec, request, early)
    finally:
        if early is not None:
            early.close()
    show_plan(ctx, spec, host, runner, probed, chosen, ctx.use_color(request.no_color), snapshot)
    if request.out is not None:
        try:
            context = plan_context(spec, host, probed.probed_at, snapshot)
            write_saved_plan(request.out, probed.plan, context, runner)
        except ReviewError as exc:
            raise Failed(str(exc)) from None
        ctx.error(
            f"Saved the plan to {request.out}; apply exactly it with: "
            f"reconciler apply {request.out}"
        )
    if probed.plan.errors:
        raise Failed()
    return EXIT_DIFFERS if request.detailed_exitcode and probed.plan.has_changes else EXIT_OK


def probed_for(
    ctx: AppContext, spec: Spec, request: PlanRequest, early: RemoteHost | None = None
) -> tuple[HostContext, ReadOnlyRunner, Probed, SnapshotSource | None]:
    """Probe this host, a remote one (over SSH), or read a snapshot; and plan. `early`: a
    connection started before the spec was validated (app/remote.py early_connection)."""
    from reconciler.app.remote import connected, plan_remote, resolve
    from reconciler.app.review import ReviewError, plan_against

    if request.against is not None:
        from reconciler.kinds import all_kinds

        try:
            return plan_against(spec, request.against, all_kinds(), host_check=request.host_check)
        except ReviewError as exc:
            raise Failed(str(exc)) from None
    remote = resolve(spec, request.reach, host_check=request.host_check)
    if remote is not None:
        with connected(remote, notes=ctx.error, early=early) as connection:
            return plan_remote(connection, spec, request.host_check)
    host, runner, probed = probe_plan(ctx, spec, request.host_check, mutating=False)
    return host, runner, probed, None


def probe(
    ctx: AppContext,
    spec_path: Path,
    out: Path | None,
    host_check: bool,
    reach: Reach | None = None,
) -> int:
    """Record this host's actual state for the spec (out None: standard output)."""
    from reconciler.app.remote import connected, resolve
    from reconciler.app.review import record_host
    from reconciler.kinds import all_kinds
    from reconciler.review.snapshot import snapshot_text

    if out is not None:
        check_out_path(out)
    spec = load(ctx, spec_path)
    remote = resolve(spec, reach, host_check=host_check) if reach else None
    if remote is not None:
        with connected(remote) as connection:
            data = connection.snapshot(spec, host_check).read_bytes()
        if out is None:
            ctx.echo(data.decode(), nl=False)
        else:
            from reconciler.shell.files import OutRefused, write_out

            try:
                write_out(out, data.decode(), 0o600)
            except OutRefused as refused:
                raise Failed(str(refused)) from None
            ctx.error(f"Recorded the state of {remote.label} in {out}")
        return EXIT_OK
    host = host_for(ctx, spec, host_check)
    snapshot, _ = record_host(spec, host, ctx.make_runner(host, False), all_kinds())
    if out is None:
        ctx.echo(snapshot_text(snapshot), nl=False)
        return EXIT_OK
    from reconciler.app.review import write_snapshot
    from reconciler.remote.protocol import Side
    from reconciler.shell.files import OutRefused

    try:
        write_snapshot(out, snapshot)
    except OutRefused as refused:
        raise Failed(str(refused)) from None
    if Side.on_target:  # the agent's private file: the admin's side says where it went
        return EXIT_OK
    ctx.error(
        f"Recorded {len(snapshot.facts)} facts of {host.hostname} (user {spec.host.user}) in "
        f"{out}; plan against it anywhere with: reconciler plan {spec_path} --against {out}"
    )
    return EXIT_OK


def diff(
    ctx: AppContext,
    old_path: Path,
    new_path: Path,
    fmt: str,
    *,
    detailed_exitcode: bool,
    no_color: bool,
) -> int:
    """The desired-state change from OLD to NEW; 2 (with --detailed-exitcode) when any."""
    from reconciler.app.review import diff_specs
    from reconciler.render import desired_diff

    changes = diff_specs(load(ctx, old_path), load(ctx, new_path))
    if fmt == "json":
        ctx.echo(desired_diff.render_json(changes))
    elif fmt == "markdown":
        ctx.echo(desired_diff.render_markdown(changes))
    else:
        color = ctx.use_color(no_color)
        ctx.echo(desired_diff.render_text(changes, color=color), color=color)
    return EXIT_DIFFERS if detailed_exitcode and changes.changes else EXIT_OK


def state_paths(ctx: AppContext, spec_path: Path, fmt: str, host_check: bool) -> int:
    """Each profile's backup-relevant paths, and which exist, as text, JSON or restic list."""
    from reconciler.app.inventory import inventory, render_json, render_restic, render_text

    spec = load(ctx, spec_path)
    host = host_for(ctx, spec, host_check)
    if host.user is None:
        # Paths stay `~user/...`: never test those against our own working directory.
        ctx.error(f"note: user {spec.host.user!r} does not exist on this host")
        found = inventory(spec, host, lambda _: False)
    else:
        found = inventory(spec, host, lambda p: p.exists())
    if fmt == "json":
        ctx.echo(render_json(found, spec), nl=False)
    elif fmt == "restic":
        ctx.echo(render_restic(found, spec), nl=False)
    else:
        ctx.echo(render_text(found), nl=False)
    return EXIT_OK

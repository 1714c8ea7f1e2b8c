"""Command-line wiring: parse arguments, call the core, print. No logic lives here."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from reconciler import __version__

if TYPE_CHECKING:
    from reconciler.app.plan_pass import Probed
    from reconciler.core.host import HostContext
    from reconciler.core.plan import Plan
    from reconciler.render.plan_context import SnapshotSource
    from reconciler.review.saved_plan import SavedPlan
    from reconciler.shell.runner import ReadOnlyRunner
    from reconciler.spec.model import Spec
    from reconciler.unattended.logs import ActionLog, LogFormat
    from reconciler.unattended.runs import ApplyOutcome


class _Group(click.Group):
    """Turns any unexpected exception into `error: Class: message` and a hint (traceback: --debug)."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)
        except Exception as exc:  # the last line of defence: no traceback reaches a user
            if ctx.obj and ctx.obj.get("debug"):
                raise
            click.echo(f"error: {type(exc).__name__}: {exc}", err=True)
            click.echo("(run with --debug for a traceback)", err=True)
            sys.exit(1)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks for unexpected errors.")
@click.version_option(__version__, prog_name="reconciler")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Keep a Clawdbot gateway host exactly as its YAML spec says."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


@cli.command()
@click.argument("specs", nargs=-1, required=True, type=click.Path(path_type=Path))
def validate(specs: tuple[Path, ...]) -> None:
    """Check SPEC files against the schema and the semantic rules; report every error."""
    from reconciler.spec import SpecInvalid, load_spec

    failed = False
    for path in specs:
        try:
            load_spec(path)
        except SpecInvalid as exc:
            failed = True
            for error in exc.errors:
                click.echo(str(error), err=True)
        else:
            click.echo(f"{path}: ok")
    sys.exit(1 if failed else 0)


@cli.command()
def schema() -> None:
    """Print the spec's JSON Schema (for editors and check-jsonschema)."""
    from reconciler.spec.schema import schema_text

    click.echo(schema_text(), nl=False)


# --- plan / apply ---------------------------------------------------------------------------

HOST_CHECK = click.option(
    "--host-check",
    type=click.Choice(["on", "off"]),
    default="on",
    show_default=True,
    help="Refuse when host.name differs from this machine's hostname (off: containers, tests).",
)
NO_COLOR = click.option("--no-color", is_flag=True, help="Never colour the output.")


def discover_host(spec: Spec) -> HostContext:
    """The real machine; tests replace this to point at a fake host."""
    from reconciler.core.host import HostContext

    return HostContext.discover(spec.host.user)


def make_runner(host: HostContext, *, mutating: bool) -> ReadOnlyRunner:
    """The runner for this invocation; only apply without --dry-run gets a mutating one."""
    from reconciler.shell.runner import HostRunner, ReadOnlyRunner

    return HostRunner(host) if mutating else ReadOnlyRunner(host)


def _use_color(no_color: bool) -> bool:
    if no_color or os.environ.get("NO_COLOR"):
        return False
    return sys.stdout.isatty()


def _load_or_exit(path: Path) -> Spec:
    from reconciler.spec import SpecInvalid, load_spec

    try:
        return load_spec(path)
    except SpecInvalid as exc:
        for error in exc.errors:
            click.echo(str(error), err=True)
        click.echo(f"{path}: invalid spec; nothing was probed or changed", err=True)
        sys.exit(1)


def _host_or_exit(spec: Spec, host_check: str) -> HostContext:
    """This machine, refusing (exit 1) a spec written for another one unless the check is off."""
    from reconciler.app.plan_pass import HostMismatch, check_host

    host = discover_host(spec)
    if host_check == "on":
        try:
            check_host(spec, host)
        except HostMismatch as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)
    return host


def _probe(
    spec: Spec, host_check: str, *, mutating: bool
) -> tuple[HostContext, ReadOnlyRunner, Probed]:
    from reconciler.app.plan_pass import probe_and_plan
    from reconciler.kinds import all_kinds

    host = _host_or_exit(spec, host_check)
    runner = make_runner(host, mutating=mutating)
    return host, runner, probe_and_plan(spec, host, runner, all_kinds())


def _print_plan(
    spec: Spec,
    host: HostContext,
    runner: ReadOnlyRunner,
    probed: Probed,
    as_json: bool | str,
    color: bool,
    snapshot: SnapshotSource | None = None,
) -> None:
    """Print the plan; `as_json` is a format name (human, json, markdown) or the old switch."""
    from reconciler.commands.review import choose_format, describe_command, render
    from reconciler.render.plan_context import plan_context

    fmt = (
        choose_format(None, as_json) if isinstance(as_json, bool) else choose_format(as_json, False)
    )
    context = plan_context(spec, host, probed.probed_at, snapshot)
    text = render(fmt, probed.plan, context, runner, describe_command(runner), color=color)
    click.echo(text, color=color and fmt == "human")


@cli.command()
@click.argument("spec_path", metavar="SPEC", type=click.Path(path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["human", "json", "markdown"]),
    default=None,
    help="human (default); json: the versioned document of schemas/plan.schema.json; "
    "markdown: a pull-request comment (at most 65,535 characters).",
)
@click.option("--json", "as_json", is_flag=True, help="Same as --format json.")
@click.option(
    "--out",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Also save the plan (JSON, no secrets) for `reconciler apply FILE`, which applies it "
    "only if the spec and the host still give exactly this plan.",
)
@click.option(
    "--against",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Plan against a snapshot from `reconciler probe` instead of this host "
    "(runs nothing, reads nothing of this machine: for CI).",
)
@click.option(
    "--detailed-exitcode",
    is_flag=True,
    help="Exit 0 when the host matches, 2 when there are changes, 1 on error.",
)
@HOST_CHECK
@NO_COLOR
def plan(
    spec_path: Path,
    fmt: str | None,
    as_json: bool,
    out: Path | None,
    against: Path | None,
    detailed_exitcode: bool,
    host_check: str,
    no_color: bool,
) -> None:
    """Probe this host (or read a snapshot) and show what apply would change. Read-only."""
    from reconciler.commands.review import (
        ReviewError,
        choose_format,
        plan_against,
        write_saved_plan,
    )
    from reconciler.kinds import all_kinds
    from reconciler.render.plan_context import plan_context

    try:
        chosen = choose_format(fmt, as_json)
    except ReviewError as exc:
        raise click.UsageError(str(exc)) from None
    spec = _load_or_exit(spec_path)
    snapshot = None
    if against is None:
        host, runner, probed = _probe(spec, host_check, mutating=False)
    else:
        try:
            host, runner, probed, snapshot = plan_against(
                spec, against, all_kinds(), host_check=host_check == "on"
            )
        except ReviewError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)
    _print_plan(spec, host, runner, probed, chosen, _use_color(no_color), snapshot)
    if out is not None:
        try:
            context = plan_context(spec, host, probed.probed_at, snapshot)
            write_saved_plan(out, probed.plan, context, runner)
        except ReviewError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)
        click.echo(
            f"Saved the plan to {out}; apply exactly it with: reconciler apply {out}", err=True
        )
    if probed.plan.errors:
        sys.exit(1)
    sys.exit(2 if detailed_exitcode and probed.plan.has_changes else 0)


@cli.command()
@click.argument("spec_path", metavar="SPEC", type=click.Path(path_type=Path))
@click.option("--dry-run", is_flag=True, help="Show the plan and the exact commands; run none.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.option(
    "--non-interactive",
    is_flag=True,
    help="Timer mode: log lines, no prompt, root-only steps blocked (never escalated), "
    "suspension honoured.",
)
@click.option(
    "--lock-timeout",
    type=click.FloatRange(min=0),
    default=0,
    show_default=True,
    help="Seconds to wait for another apply's lock (exit 75 when still busy).",
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Format of the log lines of a non-interactive run (json also logs interactively).",
)
@click.option("--git-ref", metavar="REF", help="Apply SPEC as committed at REF of its git clone.")
@HOST_CHECK
@NO_COLOR
def apply(
    spec_path: Path,
    dry_run: bool,
    yes: bool,
    non_interactive: bool,
    lock_timeout: float,
    log_format: LogFormat,
    git_ref: str | None,
    host_check: str,
    no_color: bool,
) -> None:
    """Make this host match SPEC: probe, plan, run the plan, then re-probe.

    Every apply takes the lock and leaves a run record (see `reconciler status`); a dry run
    does neither, since like `plan` it changes nothing.
    """
    color = _use_color(no_color)
    saved = _saved_plan_or_exit(spec_path)
    if saved is not None:
        if saved.spec_path is None:
            click.echo(f"error: {spec_path}: the saved plan names no spec file", err=True)
            sys.exit(1)
        spec_path = Path(saved.spec_path)
    if dry_run:
        spec = _load_or_exit(spec_path)
        host, runner, probed = _probe(spec, host_check, mutating=False)
        if saved is not None and not _fresh(saved, spec, host, probed.plan):
            sys.exit(1)
        _print_plan(spec, host, runner, probed, False, color)
        if probed.plan.errors:
            click.echo("error: the plan has errors", err=True)
            sys.exit(1)
        click.echo("Dry run: no command was run that changes the host.")
        sys.exit(0)
    from reconciler.commands.unattended import unattended_apply

    sys.exit(
        unattended_apply(
            spec_path,
            lock_timeout=lock_timeout,
            non_interactive=non_interactive,
            log_format=log_format,
            git_ref=git_ref,
            do_apply=lambda spec, log: _apply_spec(
                spec,
                log,
                host_check=host_check,
                yes=yes,
                non_interactive=non_interactive,
                color=color,
                saved=saved,
            ),
        )
    )


def _apply_spec(
    spec: Spec,
    log: ActionLog | None,
    *,
    host_check: str,
    yes: bool,
    non_interactive: bool,
    color: bool,
    saved: SavedPlan | None = None,
) -> ApplyOutcome:
    """Probe, plan, confirm, converge; report for humans (log is None) or as log lines.

    With a saved plan, the fresh plan must be the reviewed one (else nothing runs), no
    confirmation is asked (it was reviewed), and only one pass runs: a step that became
    possible only after it was not in the review.
    """
    from dataclasses import replace

    from reconciler.app.plan_pass import probe_and_plan
    from reconciler.kinds import all_kinds
    from reconciler.render.human import render_outcome
    from reconciler.shell.apply import ActionOutcome, converge
    from reconciler.shell.runner import HostRunner
    from reconciler.unattended.root_steps import block_root_steps
    from reconciler.unattended.runs import ApplyOutcome, outcome_of

    host, runner, probed = _probe(spec, host_check, mutating=True)
    as_root = f"sudo {sys.executable} -m reconciler apply {spec.path}"

    def unprivileged(plan: Plan) -> Plan:
        return block_root_steps(plan, host, apply_as_root=as_root) if non_interactive else plan

    plan = unprivileged(probed.plan)
    if saved is not None and not _fresh(saved, spec, host, probed.plan):
        return ApplyOutcome("failed", reason="the saved plan is stale")
    if log is None:
        _print_plan(spec, host, runner, replace(probed, plan=plan), False, color)
    if plan.errors:
        click.echo("error: the plan has errors; nothing was changed", err=True)
        return outcome_of(plan, None)
    if not plan.runnable:
        if log is not None:
            for action in plan.blocked:
                log.action(ActionOutcome(action, "blocked", action.blocked or ""))
        return outcome_of(plan, None)
    if not (yes or non_interactive or saved is not None):
        if not sys.stdin.isatty():
            click.echo("error: not a terminal; pass --yes to apply without confirmation", err=True)
            return ApplyOutcome("failed", reason="not a terminal and no --yes")
        if not click.confirm("Apply these changes?", default=False):
            click.echo("Nothing changed.")
            return outcome_of(plan, None)
    assert isinstance(runner, HostRunner)
    outcome = converge(
        plan,
        lambda: unprivileged(probe_and_plan(spec, host, runner, all_kinds()).plan),
        runner,
        log.action
        if log is not None
        else (lambda o: click.echo(render_outcome(o, color=color), color=color)),
        max_passes=1 if saved is not None else 3,
        on_pass=None
        if log is not None
        else lambda n, p: click.echo(
            f"Pass {n}: {len(p.runnable)} more step(s) became possible after the last pass."
        ),
    )
    if log is None:
        after = outcome.final
        click.echo(
            f"Apply: {outcome.count('applied')} applied, {outcome.count('failed')} failed, "
            f"{outcome.count('skipped')} skipped, {len(after.blocked)} blocked."
        )
        if after.runnable:
            click.echo(f"Not converged: {len(after.runnable)} action(s) still pending:", err=True)
            for action in after.runnable:
                click.echo(f"  {action.address}: {action.reason}", err=True)
        elif after.blocked:
            click.echo(f"Converged, except {len(after.blocked)} blocked step(s).")
        else:
            click.echo("Converged: the host matches the spec.")
    return outcome_of(plan, outcome)


@cli.command("state-paths")
@click.argument("spec_path", metavar="SPEC", type=click.Path(path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "restic"]),
    default="text",
    show_default=True,
    help="restic: an include file for `restic backup --files-from`.",
)
def state_paths(spec_path: Path, fmt: str) -> None:
    """List each profile's backup-relevant paths (config, credentials, sessions, workspace)."""
    from reconciler.app.inventory import inventory, render_json, render_restic, render_text

    spec = _load_or_exit(spec_path)
    host = discover_host(spec)
    if host.user is None:
        # Paths stay `~user/...`: never test those against our own working directory.
        click.echo(f"note: user {spec.host.user!r} does not exist on this host", err=True)
        found = inventory(spec, host, lambda _: False)
    else:
        found = inventory(spec, host, lambda p: p.exists())
    if fmt == "json":
        click.echo(render_json(found, spec), nl=False)
    elif fmt == "restic":
        click.echo(render_restic(found, spec), nl=False)
    else:
        click.echo(render_text(found), nl=False)


def _saved_plan_or_exit(path: Path) -> SavedPlan | None:
    """The saved plan at `path` (from `plan --out`), None when `path` is a spec."""
    from reconciler.review.saved_plan import SavedPlanInvalid, is_saved_plan, load_saved_plan

    if not is_saved_plan(path):
        return None
    try:
        return load_saved_plan(path)
    except SavedPlanInvalid as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)


def _fresh(saved: SavedPlan, spec: Spec, host: HostContext, plan: Plan) -> bool:
    """Refuse (False, with Terraform's wording) a saved plan that is not what would run now."""
    from reconciler.review.saved_plan import StalePlan, check_fresh

    try:
        check_fresh(saved, spec.path, spec.sha256, host.hostname, plan, invoker=host.invoker.name)
    except StalePlan as exc:
        click.echo(f"error: {exc}", err=True)
        return False
    return True


def _register_commands() -> None:
    from reconciler.commands.unattended import resume, status, suspend

    for command in (status, suspend, resume):
        cli.add_command(command)


_register_commands()


# --- review: snapshots and spec diffs (issue 6) ------------------------------------------------


@cli.command()
@click.argument("spec_path", metavar="SPEC", type=click.Path(path_type=Path))
@click.option(
    "--out",
    type=click.Path(path_type=Path, dir_okay=False, allow_dash=True),
    default=Path("-"),
    show_default=True,
    help="Where to write the snapshot (-: standard output).",
)
@HOST_CHECK
def probe(spec_path: Path, out: Path, host_check: str) -> None:
    """Record this host's actual state for SPEC (read-only, no secrets), for `plan --against`."""
    from reconciler.commands.review import record_host
    from reconciler.kinds import all_kinds
    from reconciler.review.snapshot import snapshot_text

    spec = _load_or_exit(spec_path)
    host = _host_or_exit(spec, host_check)
    snapshot, _ = record_host(spec, host, make_runner(host, mutating=False), all_kinds())
    text = snapshot_text(snapshot)
    if str(out) == "-":
        click.echo(text, nl=False)
        return
    from reconciler.shell.files import atomic_write

    atomic_write(out, text, 0o644, backup=False)
    click.echo(
        f"Recorded {len(snapshot.facts)} facts of {host.hostname} (user {spec.host.user}) in "
        f"{out}; plan against it anywhere with: reconciler plan {spec_path} --against {out}",
        err=True,
    )


@cli.command()
@click.argument("old_path", metavar="OLD", type=click.Path(path_type=Path))
@click.argument("new_path", metavar="NEW", type=click.Path(path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["human", "json", "markdown"]),
    default="human",
    show_default=True,
)
@click.option(
    "--detailed-exitcode", is_flag=True, help="Exit 0 when nothing changes, 2 when it does."
)
@NO_COLOR
def diff(old_path: Path, new_path: Path, fmt: str, detailed_exitcode: bool, no_color: bool) -> None:
    """Show what changes in the desired state from OLD to NEW, two versions of a spec.

    Resolved to concrete values (ports, unit names, state paths, serve targets, environment);
    paths are under ~USER, the spec user's home. Reads no host.
    """
    from reconciler.commands.review import diff_specs
    from reconciler.render import desired_diff

    changes = diff_specs(_load_or_exit(old_path), _load_or_exit(new_path))
    if fmt == "json":
        click.echo(desired_diff.render_json(changes))
    elif fmt == "markdown":
        click.echo(desired_diff.render_markdown(changes))
    else:
        color = _use_color(no_color)
        click.echo(desired_diff.render_text(changes, color=color), color=color)
    sys.exit(2 if detailed_exitcode and changes.changes else 0)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="reconciler")

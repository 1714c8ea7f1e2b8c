"""Commands that probe the host and plan or apply: `plan`, `apply`, `probe`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from reconciler.app.context import EXIT_USAGE, AppContext, Failed
from reconciler.commands.wiring import (
    HOST_CHECK,
    JOBS,
    LOCK_TIMEOUT,
    NO_COLOR,
    REACH,
    YES,
    host_check_on,
    reach_of,
    use_case,
)

if TYPE_CHECKING:
    from reconciler.unattended.logs import LogFormat


@click.command()
@click.argument(
    "spec_paths", metavar="SPEC...", nargs=-1, required=True, type=click.Path(path_type=Path)
)
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
    "only if the spec and the host still give exactly this plan. Its folder must exist.",
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
    help="Exit 0 when the host matches the spec, 2 when it does not (steps to run or "
    "blocked steps), 1 on error.",
)
@HOST_CHECK
@REACH
@JOBS
@NO_COLOR
@use_case
def plan(
    app: AppContext,
    spec_paths: tuple[Path, ...],
    fmt: str | None,
    as_json: bool,
    out: Path | None,
    against: Path | None,
    detailed_exitcode: bool,
    host_check: str,
    target: str | None,
    ssh_config: Path | None,
    jobs: int,
    no_color: bool,
) -> int:
    """Probe this host (or read a snapshot) and show what apply would change. Read-only.

    With several SPECs (one per host), plan every host in parallel and end with a table.
    """
    from reconciler.app.fleet import FleetRequest, expanded, plan_fleet
    from reconciler.app.planning import PlanRequest
    from reconciler.app.planning import plan as run

    with expanded(app, spec_paths) as (paths, labels):
        if len(paths) > 1 or labels:  # several hosts, or a fleet file
            if out is not None or against is not None:
                raise Failed("--out and --against take one SPEC", EXIT_USAGE)
            fleet = FleetRequest(
                paths,
                jobs,
                "json" if as_json else (fmt or "human"),
                host_check_on(host_check),
                reach_of(target, ssh_config),
                no_color,
                labels,
            )
            return plan_fleet(app, fleet, detailed_exitcode)
    request = PlanRequest(
        spec_paths[0],
        fmt,
        as_json,
        out,
        against,
        detailed_exitcode,
        host_check_on(host_check),
        no_color,
        reach_of(target, ssh_config),
    )
    return run(app, request)


@click.command()
@click.argument(
    "spec_or_plan",
    metavar="SPEC|PLAN...",
    nargs=-1,
    required=True,
    type=click.Path(path_type=Path),
)
@click.option("--dry-run", is_flag=True, help="Show the plan and the exact commands; run none.")
@YES
@click.option(
    "--non-interactive",
    is_flag=True,
    help="Timer mode: log lines, no prompt, root-only steps blocked (never escalated), "
    "suspension honoured.",
)
@LOCK_TIMEOUT
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Format of the log lines of a non-interactive run (json also logs interactively).",
)
@click.option(
    "--git-ref",
    metavar="REF",
    help="Apply SPEC as committed at REF of its git clone (with --dry-run: show that plan).",
)
@HOST_CHECK
@REACH
@JOBS
@NO_COLOR
@use_case
def apply(
    app: AppContext,
    spec_or_plan: tuple[Path, ...],
    dry_run: bool,
    yes: bool,
    non_interactive: bool,
    lock_timeout: float,
    log_format: LogFormat,
    git_ref: str | None,
    host_check: str,
    target: str | None,
    ssh_config: Path | None,
    jobs: int,
    no_color: bool,
) -> int:
    """Make this host match SPEC (or run the saved PLAN from `plan --out`): probe, plan, run
    the plan, then re-probe.

    Exit 0 when the host matches the spec, 2 when it still does not (blocked or pending
    steps, nothing failed), 1 on errors and failed steps, 75 when another apply holds the lock.
    Every apply takes the lock and leaves a run record (see `reconciler status`); a dry run
    does neither, since like `plan` it changes nothing.
    """
    from reconciler.app.applying import ApplyRequest
    from reconciler.app.applying import apply as run
    from reconciler.app.fleet import FleetRequest, apply_fleet, expanded

    with expanded(app, spec_or_plan) as (paths, labels):
        if len(paths) > 1 or labels:  # several hosts, or a fleet file
            if non_interactive or git_ref is not None:
                raise Failed("--non-interactive and --git-ref take one SPEC", EXIT_USAGE)
            fleet = FleetRequest(
                paths,
                jobs,
                "human",
                host_check_on(host_check),
                reach_of(target, ssh_config),
                no_color,
                labels,
            )
            return apply_fleet(app, fleet, yes=yes, dry_run=dry_run)
    request = ApplyRequest(
        spec_or_plan[0],
        dry_run=dry_run,
        yes=yes,
        non_interactive=non_interactive,
        lock_timeout=lock_timeout,
        log_format=log_format,
        git_ref=git_ref,
        host_check=host_check_on(host_check),
        no_color=no_color,
        reach=reach_of(target, ssh_config),
    )
    return run(app, request)


@click.command()
@click.argument("spec_path", metavar="SPEC", type=click.Path(path_type=Path))
@click.option(
    "--out",
    type=click.Path(path_type=Path, dir_okay=False, allow_dash=True),
    default=Path("-"),
    show_default=True,
    help="Where to write the snapshot (-: standard output). Its folder must exist.",
)
@HOST_CHECK
@REACH
@use_case
def probe(
    app: AppContext,
    spec_path: Path,
    out: Path,
    host_check: str,
    target: str | None,
    ssh_config: Path | None,
) -> int:
    """Record this host's actual state for SPEC (read-only, no secrets), for `plan --against`."""
    from reconciler.app.planning import probe as run

    where = None if str(out) == "-" else out
    return run(app, spec_path, where, host_check_on(host_check), reach_of(target, ssh_config))


COMMANDS = (plan, apply, probe)

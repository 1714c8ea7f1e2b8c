"""Gateway update commands: `update` (apply, retrying versions marked bad) and `rollback`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from reconciler.app.context import AppContext
from reconciler.commands.wiring import (
    HOST_CHECK,
    LOCK_TIMEOUT,
    NO_COLOR,
    YES,
    host_check_on,
    over_ssh,
    use_case,
)

if TYPE_CHECKING:
    from reconciler.unattended.logs import LogFormat


@click.command()
@click.argument("spec_path", metavar="SPEC", type=click.Path(path_type=Path))
@click.option(
    "--retry",
    "retry",
    metavar="PROFILE",
    multiple=True,
    help="Forget that this profile's version failed its health check, and try it again "
    "(repeatable).",
)
@click.option("--dry-run", is_flag=True, help="Show the plan and the exact commands; run none.")
@YES
@LOCK_TIMEOUT
@HOST_CHECK
@NO_COLOR
@over_ssh(changes_host=True, installs_timer=True)
@use_case
def update(
    app: AppContext,
    spec_path: Path,
    retry: tuple[str, ...],
    dry_run: bool,
    yes: bool,
    lock_timeout: float,
    host_check: str,
    no_color: bool,
) -> int:
    """Apply SPEC, the gateway updates it pins included; with --retry PROFILE, first forget
    that PROFILE's version failed its health check (the plan blocks a version marked bad, and
    the timer never retries one).

    Exit codes as `apply`: 0 converged, 2 not converged, 1 failed (a rolled-back switch
    included), 75 locked.
    """
    from reconciler.app.applying import ApplyRequest
    from reconciler.app.remote import Reach
    from reconciler.app.updates import UpdateRequest
    from reconciler.app.updates import update as run

    log_format: LogFormat = "text"
    request = ApplyRequest(
        spec_path,
        dry_run=dry_run,
        yes=yes,
        lock_timeout=lock_timeout,
        log_format=log_format,
        host_check=host_check_on(host_check),
        no_color=no_color,
        reach=Reach("local"),
    )
    return run(app, UpdateRequest(tuple(dict.fromkeys(retry)), request))


@click.command()
@click.argument("spec_path", metavar="SPEC", type=click.Path(path_type=Path))
@click.argument("profile", metavar="PROFILE")
@click.option(
    "--to",
    "to",
    metavar="VERSION",
    help="The installed version to go back to (default: the one PROFILE ran before its last "
    "kept switch).",
)
@YES
@LOCK_TIMEOUT
@HOST_CHECK
@over_ssh(changes_host=True)
@use_case
def rollback(
    app: AppContext,
    spec_path: Path,
    profile: str,
    to: str | None,
    yes: bool,
    lock_timeout: float,
    host_check: str,
) -> int:
    """Switch PROFILE's gateway back to an installed version, behind the same health gate as
    an update (restored if the old one is not healthy either). The spec still pins the newer
    version: it is marked bad for PROFILE, so the timer and `apply` do not switch back to it
    until the spec changes or `update --retry PROFILE` runs.

    Exit 0 rolled back (or already there), 1 failed, 75 locked.
    """
    from reconciler.app.updates import RollbackRequest
    from reconciler.app.updates import rollback as run

    request = RollbackRequest(spec_path, profile, to, yes, host_check_on(host_check), lock_timeout)
    return run(app, request)


COMMANDS = (update, rollback)

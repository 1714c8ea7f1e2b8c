"""Commands for unattended runs: `status`, `suspend`, `resume` (apply's timer mode is an
option of `apply`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from reconciler.app.context import AppContext
from reconciler.commands.wiring import REACH, across_hosts, over_ssh, reach_of, use_case

if TYPE_CHECKING:
    from reconciler.app.fleet import HostAction, HostReport


def _status_report(**_: Any) -> HostReport:
    """status on each host of a fleet: its JSON document, for the table."""
    from reconciler.app.fleet import HostReport
    from reconciler.app.unattended import status as run

    return HostReport("status", ("--json",), lambda app, path: run(app, path, as_json=True))


@click.command()
@across_hosts(_status_report)
@click.option("--json", "as_json", is_flag=True, help="Same as --format json.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["human", "json"]),
    help="human (default); json: the status as a JSON document (with several SPECs: a list, "
    "one per host).",
)
@REACH
@use_case
def status(
    app: AppContext,
    spec_path: Path,
    as_json: bool,
    fmt: str | None,
    target: str | None,
    ssh_config: Path | None,
) -> int:
    """Show the last runs, drift found, suspension and the reconcile timer. Read-only. With
    several SPECs (or a fleet file): one table across the hosts."""
    from reconciler.app.unattended import status as run

    json_out = as_json or fmt == "json"
    return run(app, spec_path, as_json=json_out, reach=reach_of(target, ssh_config))


def _suspend_action(reason: str, replace_existing: bool, **_: Any) -> HostAction:
    """suspend on each host of a fleet (it finishes there if the link drops)."""
    from reconciler.app.fleet import HostAction
    from reconciler.app.unattended import suspend as run

    argv = ("suspend", f"--reason={reason}", *(("--replace",) if replace_existing else ()))
    return HostAction(
        argv,
        lambda app, path: run(app, reason, replace_existing=replace_existing, spec_path=path),
    )


def _resume_action(**_: Any) -> HostAction:
    """resume on each host of a fleet (it finishes there if the link drops)."""
    from reconciler.app.fleet import HostAction
    from reconciler.app.unattended import resume as run

    return HostAction(("resume",), lambda app, path: run(app, path))


@click.command()
@across_hosts(_suspend_action, required=False)
@click.option("--reason", default="", help="Why (shown by status and by every skipped run).")
@click.option(
    "--replace",
    "replace_existing",
    is_flag=True,
    help="Replace a suspension already in force (without it, that one is kept and shown).",
)
@over_ssh(changes_host=True)
@use_case
def suspend(app: AppContext, spec_path: Path | None, reason: str, replace_existing: bool) -> int:
    """Pause unattended runs: timer runs exit at once until `reconciler resume`. With SPEC
    (as root): its user's timer; on its host when that is remote (--target, host.ssh). With
    several SPECs (or a fleet file): on every host, then one table."""
    from reconciler.app.unattended import suspend as run

    return run(app, reason, replace_existing=replace_existing, spec_path=spec_path)


@click.command()
@across_hosts(_resume_action, required=False)
@over_ssh(changes_host=True)
@use_case
def resume(app: AppContext, spec_path: Path | None) -> int:
    """Let unattended runs apply again after `reconciler suspend`. With SPEC (as root): its
    user's timer; on its host when that is remote (--target, host.ssh). With several SPECs
    (or a fleet file): on every host, then one table."""
    from reconciler.app.unattended import resume as run

    return run(app, spec_path)


COMMANDS = (status, suspend, resume)

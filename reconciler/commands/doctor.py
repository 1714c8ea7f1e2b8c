"""Day-2 commands: `doctor`, `devices`, `logs`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from reconciler.app.context import AppContext
from reconciler.commands.wiring import HOST_CHECK, across_hosts, host_check_on, over_ssh, use_case

if TYPE_CHECKING:
    from reconciler.app.fleet import HostReport


def _doctor_report(profile: str | None, host_check: str, **_: Any) -> HostReport:
    """doctor on each host of a fleet: its JSON document, for the table."""
    from reconciler.app.doctor import DoctorRequest
    from reconciler.app.doctor import doctor as run
    from reconciler.app.fleet import HostReport

    checked = host_check_on(host_check)
    options = ("--format", "json", f"--host-check={host_check}")
    return HostReport(
        "doctor",
        (*options, *(("--profile", profile) if profile else ())),
        lambda app, path: run(app, DoctorRequest(path, profile, "json", checked)),
        failing="broken",
    )


@click.command()
@across_hosts(_doctor_report)
@click.option("--profile", "profile", metavar="P", help="Check only this profile.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["human", "json"]),
    default="human",
    show_default=True,
    help="json: one document with every profile's links (docs/doctor.md).",
)
@HOST_CHECK
@over_ssh()
@use_case
def doctor(app: AppContext, spec_path: Path, profile: str | None, fmt: str, host_check: str) -> int:
    """Walk each profile's chain (tailscale, serve, unit, port, gateway health, linger, config,
    state) and stop at the first broken link with the exact fix. Read-only. With several
    SPECs (or a fleet file): one table across the hosts.

    Exit 0 when every checked profile is healthy, 1 when a link is broken (or on error).
    """
    from reconciler.app.doctor import DoctorRequest
    from reconciler.app.doctor import doctor as run

    request = DoctorRequest(
        spec_path, profile, "json" if fmt == "json" else "human", host_check_on(host_check)
    )
    return run(app, request)


@click.command()
@click.argument("spec_path", metavar="SPEC", type=click.Path(path_type=Path))
@click.argument("profile", metavar="PROFILE")
@click.argument("action", metavar="[approve REQUEST_ID]", nargs=-1)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["human", "json"]),
    default="human",
    show_default=True,
    help="Format of the list.",
)
@HOST_CHECK
@over_ssh()
@use_case
def devices(
    app: AppContext,
    spec_path: Path,
    profile: str,
    action: tuple[str, ...],
    fmt: str,
    host_check: str,
) -> int:
    """List PROFILE's pending pairing requests (age, client, platform, time left before they
    expire) and paired devices; `approve REQUEST_ID` approves one through the gateway's CLI.

    Nothing is ever approved automatically. Exit 0; 1 on errors (a failed approval).
    """
    from reconciler.app.devices import DevicesRequest
    from reconciler.app.devices import devices as run

    if action and (action[0] != "approve" or len(action) != 2):
        raise click.UsageError(
            f"expected `approve REQUEST_ID` after PROFILE, got: {' '.join(action)}"
        )
    request = DevicesRequest(
        spec_path,
        profile,
        action[1] if action else None,
        "json" if fmt == "json" else "human",
        host_check_on(host_check),
    )
    return run(app, request)


@click.command()
@click.argument("spec_path", metavar="SPEC", type=click.Path(path_type=Path))
@click.argument("profile", metavar="[PROFILE]", required=False)
@click.option("--runs", is_flag=True, help="The reconciler's own timer runs instead of a profile.")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines (Ctrl-C ends).")
@click.option("--since", metavar="WHEN", help="journalctl's --since: `1h ago`, `today`, a date.")
@click.option("-n", "--lines", type=click.IntRange(min=0), help="Only the last N lines.")
@HOST_CHECK
@over_ssh()
@use_case
def logs(
    app: AppContext,
    spec_path: Path,
    profile: str | None,
    runs: bool,
    follow: bool,
    since: str | None,
    lines: int | None,
    host_check: str,
) -> int:
    """The journal of PROFILE's gateway unit (`journalctl --user -u UNIT` as the spec's user,
    also when run as root), or with --runs of the reconciler's timer runs.

    Exit 0; 1 when journalctl fails; 64 usage (neither or both of PROFILE and --runs).
    """
    from reconciler.app.logs import LogsRequest
    from reconciler.app.logs import logs as run

    request = LogsRequest(spec_path, profile, runs, follow, since, lines, host_check_on(host_check))
    return run(app, request)


COMMANDS = (doctor, devices, logs)

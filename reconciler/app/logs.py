"""`reconciler logs SPEC PROFILE [-f] [--since S] [-n N]` and `reconciler logs SPEC --runs`.

The profile's journal is the user's: `journalctl --user -u <unit>` run as the spec's user (the
runner adds `runuser` when we are root, also under `sudo`), so root sees exactly what the user
would. `--runs` shows the reconciler's own timer runs (the `reconciler.service` journal, and
`reconciler-backup.service`'s when the spec has a backup section).
"""

from __future__ import annotations

from pathlib import Path

from reconciler.app.context import EXIT_FAILED, EXIT_OK, EXIT_USAGE, AppContext, Failed
from reconciler.app.specs import load, profile_named
from reconciler.core.command import Command
from reconciler.core.untrusted import printable
from reconciler.frozen import frozen

RUNS_UNIT = "reconciler.service"  # the timer's service (kinds/reconcile_timer.py SERVICE_UNIT)
BACKUP_RUNS_UNIT = "reconciler-backup.service"  # the backup timer's (kinds/_backup_units.py)


@frozen
class LogsRequest:
    """What `reconciler logs` was asked for."""

    spec_path: Path
    profile: str | None
    runs: bool = False
    follow: bool = False
    since: str | None = None
    lines: int | None = None
    host_check: bool = True


def journal_command(unit: str, request: LogsRequest, *more: str) -> Command:
    """`journalctl --user -u UNIT [-u MORE ...] --no-pager [-n N] [--since S] [-f]` as the spec's
    user (several units: journalctl interleaves their lines by time)."""
    argv = ["journalctl", "--user", "-u", unit, *(w for u in more for w in ("-u", u)), "--no-pager"]
    if request.lines is not None:
        argv += ["-n", str(request.lines)]
    if request.since is not None:
        argv += ["--since", request.since]
    if request.follow:
        argv.append("-f")
    return Command(tuple(argv), scope="user")


def logs(ctx: AppContext, request: LogsRequest) -> int:
    """Print (or follow) the journal of a profile's unit, or of the reconciler's timer runs."""
    from reconciler.app.planning import host_for
    from reconciler.spec.naming import product_names

    if request.runs == (request.profile is not None):
        raise Failed("name a PROFILE, or pass --runs (not both)", code=EXIT_USAGE)
    spec = load(ctx, request.spec_path)
    if request.profile is not None:
        profile_named(spec, request.spec_path, request.profile)
        unit = product_names(spec.product).unit(request.profile)
    else:
        unit = RUNS_UNIT
    # --runs: the backup timer's runs too, when the spec backs up.
    more = (BACKUP_RUNS_UNIT,) if request.profile is None and spec.backup is not None else ()
    host = host_for(ctx, spec, request.host_check)
    runner = ctx.make_runner(host, False)
    # Journal lines are the gateway's (and whatever it logged from its clients): escaped.
    result = runner.stream(
        journal_command(unit, request, *more),
        lambda line: ctx.echo(printable(line)),
        lambda line: ctx.error(printable(line)),
    )
    if result.exit_code is None:
        raise Failed(f"journalctl --user -u {unit}: {result.error}")
    return EXIT_OK if result.exit_code == 0 else EXIT_FAILED

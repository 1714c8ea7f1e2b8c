"""`reconciler backup ...`: restic backups of the profiles' state (docs/backups.md)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import click

from reconciler.app.context import AppContext
from reconciler.commands.wiring import over_ssh, use_case

SPEC = click.argument("spec_path", metavar="SPEC", type=click.Path(path_type=Path))
PROFILE = click.option("--profile", help="Only this profile (default: every backed-up profile).")


@click.group()
def backup() -> None:
    """Back up, list, verify and restore the gateways' state with restic."""


@backup.command("init")
@SPEC
@over_ssh(changes_host=True)
@use_case
def init(app: AppContext, spec_path: Path) -> int:
    """Create the restic repository when it does not exist (never re-initialises one)."""
    from reconciler.app.backup import init as run

    return run(app, spec_path)


@backup.command("run")
@SPEC
@PROFILE
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="json: one JSON object a line (message, backup per profile, summary), for log shippers.",
)
@over_ssh(changes_host=True)
@use_case
def run_(app: AppContext, spec_path: Path, profile: str | None, log_format: str) -> int:
    """Back up now (what the backup timer runs); holds the reconciler's host lock."""
    from reconciler.app.backup import run

    return run(app, spec_path, profile, log_format)


@backup.command("list")
@SPEC
@PROFILE
@click.option("--json", "as_json", is_flag=True, help="Print the snapshots as JSON.")
@over_ssh()
@use_case
def list_(app: AppContext, spec_path: Path, profile: str | None, as_json: bool) -> int:
    """List this host's snapshots of the backed-up profiles."""
    from reconciler.app.backup import list_snapshots

    return list_snapshots(app, spec_path, profile, as_json)


@backup.command("verify")
@SPEC
@PROFILE
@click.option(
    "--read-data-subset",
    "subset",
    default="10%",
    show_default=True,
    help="What `restic check` reads of the pack files (e.g. 10%, 1/5, 100%).",
)
@over_ssh()
@use_case
def verify(app: AppContext, spec_path: Path, profile: str | None, subset: str) -> int:
    """Restore each profile's latest snapshot to a temporary directory and compare every file;
    then `restic check --read-data-subset`. Exit 1, loudly, on any difference."""
    from reconciler.app.backup import verify as run

    return run(app, spec_path, profile, subset)


def _target_is_a_host(command: Callable[..., NoReturn]) -> Callable[..., NoReturn]:
    """`--target` names the host, as in every command; `--target DIR` (the folder, before it
    was `--into`) is refused with that said, never taken for a host name."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> NoReturn:
        target = kwargs.get("target")
        if target is not None and target != "local" and not target.startswith("ssh://"):
            raise click.UsageError(
                f"--target {target}: --target names the host (ssh://[USER@]HOST[:PORT] or "
                "local); restore into a folder with --into DIR"
            )
        command(*args, **kwargs)

    return run


@backup.command("restore")
@SPEC
@click.argument("profile")
@click.option("--snapshot", help="Snapshot id or prefix (default: the profile's latest).")
@click.option(
    "--into",
    "target_dir",
    metavar="DIR",
    type=click.Path(path_type=Path, file_okay=False),
    help="Restore into this directory on the host (default: a fresh one under the state "
    "directory).",
)
@click.option(
    "--in-place",
    is_flag=True,
    help="Replace the live state: stop the gateway, move the state aside, restore, start.",
)
@_target_is_a_host
# An in-place restore half done is a stopped gateway on half its state: if the link drops, it
# runs to the end there (restore, start, health check, record). A staging restore only makes a
# copy to look at: it stops with its client, as a read does (docs/remote.md).
@over_ssh(changes_host=lambda options: bool(options.get("in_place")))
@use_case
def restore(
    app: AppContext,
    spec_path: Path,
    profile: str,
    snapshot: str | None,
    target_dir: Path | None,
    in_place: bool,
) -> int:
    """Restore a snapshot of PROFILE (by default into a staging directory, never in place)."""
    from reconciler.app.backup import restore as run

    return run(app, spec_path, profile, snapshot, target_dir, in_place)


COMMANDS = (backup,)

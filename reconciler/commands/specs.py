"""Commands that read specs (and, for `state-paths` and `versions`, the host read-only)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from reconciler.app.context import AppContext
from reconciler.commands.wiring import (
    HOST_CHECK,
    NO_COLOR,
    across_hosts,
    host_check_on,
    over_ssh,
    use_case,
)

if TYPE_CHECKING:
    from reconciler.app.fleet import HostReport


@click.command()
@click.argument(
    "specs", metavar="SPEC...", nargs=-1, required=True, type=click.Path(path_type=Path)
)
@use_case
def validate(app: AppContext, specs: tuple[Path, ...]) -> int:
    """Check SPEC files (-: standard input) against the schema and the semantic rules; report
    every error."""
    from reconciler.app.specs import validate as run

    return run(app, specs)


@click.command()
@use_case
def schema(app: AppContext) -> int:
    """Print the spec's JSON Schema (for editors and check-jsonschema)."""
    from reconciler.spec.schema import schema_text

    app.echo(schema_text(), nl=False)
    return 0


@click.command()
@click.argument("old_path", metavar="OLD", type=click.Path(path_type=Path))
@click.argument("new_path", metavar="NEW", type=click.Path(path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["human", "json", "markdown"]),
    default="human",
    show_default=True,
    help="human: a coloured text diff; json: a document of the changes; markdown: a "
    "pull-request comment.",
)
@click.option(
    "--detailed-exitcode", is_flag=True, help="Exit 0 when nothing changes, 2 when it does."
)
@NO_COLOR
@use_case
def diff(
    app: AppContext,
    old_path: Path,
    new_path: Path,
    fmt: str,
    detailed_exitcode: bool,
    no_color: bool,
) -> int:
    """Show what changes in the desired state from OLD to NEW, two versions of a spec.

    Resolved to concrete values (ports, unit names, state paths, serve targets, environment);
    paths are under ~USER, the spec user's home. Reads no host.
    """
    from reconciler.app.planning import diff as run

    return run(app, old_path, new_path, fmt, detailed_exitcode=detailed_exitcode, no_color=no_color)


@click.command("state-paths")
@click.argument("spec_path", metavar="SPEC", type=click.Path(path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "restic"]),
    default="text",
    show_default=True,
    help="restic: an include file for `restic backup --files-from`.",
)
@HOST_CHECK
@over_ssh()
@use_case
def state_paths(app: AppContext, spec_path: Path, fmt: str, host_check: str) -> int:
    """List each profile's backup-relevant paths (config, credentials, sessions, workspace)."""
    from reconciler.app.planning import state_paths as run

    return run(app, spec_path, fmt, host_check_on(host_check))


def _versions_report(fmt: str, host_check: str, **_: Any) -> HostReport:
    """versions on each host of a fleet: its JSON document, for the table."""
    from reconciler.app.fleet import HostReport
    from reconciler.app.versions import versions as run

    checked = host_check_on(host_check)
    return HostReport(
        "versions",
        ("--format", "json", f"--host-check={host_check}"),
        lambda app, path: run(app, path, "json", checked),
    )


@click.command("versions")
@across_hosts(_versions_report)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["human", "json"]),
    default="human",
    show_default=True,
)
@HOST_CHECK
@over_ssh()
@use_case
def versions(app: AppContext, spec_path: Path, fmt: str, host_check: str) -> int:
    """List the gateway versions installed side by side: which profile runs and wants which,
    which are marked bad, the disk each takes. With several SPECs (or a fleet file): one
    table across the hosts, a row per profile."""
    from reconciler.app.versions import versions as run

    return run(app, spec_path, fmt, host_check_on(host_check))


COMMANDS = (validate, schema, diff, state_paths, versions)

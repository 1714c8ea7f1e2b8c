"""What every command shares: the options, and running a use case to its exit code."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Concatenate, NoReturn, ParamSpec

import click

from reconciler.app.context import AppContext, Failed

if TYPE_CHECKING:
    from reconciler.app.remote import Reach

P = ParamSpec("P")

HOST_CHECK = click.option(
    "--host-check",
    type=click.Choice(["on", "off"]),
    default="on",
    show_default=True,
    help="Refuse when host.name differs from this machine's hostname (off: containers, tests).",
)
NO_COLOR = click.option("--no-color", is_flag=True, help="Never colour the output.")
YES = click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
LOCK_TIMEOUT = click.option(
    "--lock-timeout",
    type=click.FloatRange(min=0),
    default=0,
    show_default=True,
    help="Seconds to wait for another apply's lock (exit 75 when still busy).",
)


def REACH(command: Callable[..., Any]) -> Callable[..., Any]:
    """`--target` and `--ssh-config`: where the host is (docs/remote.md)."""
    command = click.option(
        "--ssh-config",
        type=click.Path(path_type=Path, dir_okay=False, exists=True),
        help="An ssh_config file for the connection (default: ssh's own, ~/.ssh/config).",
    )(command)
    return click.option(
        "--target",
        metavar="ssh://[USER@]HOST[:PORT]|local",
        help="Reach the host over SSH (default: host.ssh of the spec, unless this machine is "
        "the host); `local`: this machine.",
    )(command)


JOBS = click.option(
    "--jobs",
    "-j",
    type=click.IntRange(min=1, max=64),
    default=8,
    show_default=True,
    help="With several SPECs: how many hosts at once.",
)


def reach_of(target: str | None, ssh_config: Path | None) -> Reach:
    from reconciler.app.remote import Reach

    return Reach(target, ssh_config)


def use_case(
    command: Callable[Concatenate[AppContext, P], int],
) -> Callable[P, NoReturn]:
    """Run the command body with the AppContext (click's `obj`, or the real one) and exit with
    the code it returns; a `Failed` prints `error: MESSAGE` on stderr and exits its code."""

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> NoReturn:
        app = click.get_current_context().find_object(AppContext) or AppContext()
        try:
            code = command(app, *args, **kwargs)
        except Failed as exc:
            if exc.message:
                app.error(f"error: {exc.message}")
            code = exc.code
        sys.exit(code)

    return run


def host_check_on(value: Any) -> bool:
    """`--host-check on|off` as a bool."""
    return bool(value == "on")

"""What every command shares: the options, and running a use case to its exit code."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Concatenate, NoReturn, ParamSpec

import click

from reconciler.app.context import EXIT_USAGE, AppContext, Failed

if TYPE_CHECKING:
    from reconciler.app.fleet import HostAction, HostReport
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


def _spec_argv(ctx: click.Context, spec_param: str) -> list[str]:
    """This very command line, rebuilt from what click parsed, for the agent there: the spec
    argument becomes the file the request carries; options given explicitly are kept; the
    positional arguments follow `--` (one that starts with `-` stays an argument)."""
    from reconciler.app.remote import SPEC_FILE
    from reconciler.remote.client import file_arg

    options: list[str] = []
    positional: list[str] = []
    for param in ctx.command.params:
        name = param.name or ""
        value = ctx.params.get(name)
        if name in ("target", "ssh_config"):
            continue
        if isinstance(param, click.Argument):
            if name == spec_param:
                positional.append(file_arg(SPEC_FILE))
            elif value is not None:
                values = value if param.nargs == -1 else (value,)
                positional.extend(str(v) for v in values)
            continue
        if not isinstance(param, click.Option) or ctx.get_parameter_source(name) in (
            None,
            click.core.ParameterSource.DEFAULT,
            click.core.ParameterSource.DEFAULT_MAP,
        ):
            continue
        if param.is_flag and not param.secondary_opts and isinstance(value, bool):
            options += [param.opts[0]] if value else []
        elif param.is_flag and isinstance(value, bool):
            options.append(param.opts[0] if value else param.secondary_opts[0])
        elif param.multiple:
            for item in value or ():
                options += [param.opts[0], str(item)]
        else:
            options += [param.opts[0], str(value)]
    return [*ctx.command_path.split()[1:], *options, "--", *positional]


def over_ssh(
    *,
    spec_param: str = "spec_path",
    changes_host: bool | Callable[[dict[str, Any]], bool] = False,
    installs_timer: bool = False,
) -> Callable[[Callable[P, NoReturn]], Callable[..., NoReturn]]:
    """`--target` and `--ssh-config` for a day-2 command, which then runs on the spec's host
    when that host is remote (`--target ssh://...`, or `host.ssh`), through the agent, with the
    same arguments (docs/remote.md). Put it between the click decorators and `use_case`.

    `changes_host`: it finishes there if the connection is lost (RemoteReconciler.call), or a
    function of the command's options that says so (`backup restore`: only `--in-place`). A
    command whose SPEC is optional (`suspend`) runs here without one, and `--target` then is a
    usage error (which host's spec would it be?)."""

    def wrap(command: Callable[P, NoReturn]) -> Callable[..., NoReturn]:
        @functools.wraps(command)
        def run(*args: Any, target: str | None, ssh_config: Path | None, **kwargs: Any) -> NoReturn:
            from reconciler.app.remote import LOCAL, command_there

            ctx = click.get_current_context()
            app = ctx.find_object(AppContext) or AppContext()
            finish = changes_host(kwargs) if callable(changes_host) else changes_host
            try:
                if kwargs[spec_param] is None:
                    if target not in (None, LOCAL):
                        raise Failed(
                            "--target needs a SPEC: the spec of the host to reach", EXIT_USAGE
                        )
                    code = None
                else:
                    code = command_there(
                        app,
                        kwargs[spec_param],
                        reach_of(target, ssh_config),
                        _spec_argv(ctx, spec_param),
                        host_check=host_check_on(kwargs.get("host_check", "on")),
                        changes_host=finish,
                        installs_timer=installs_timer,
                    )
            except Failed as exc:
                if exc.message:
                    app.error(f"error: {exc.message}")
                sys.exit(exc.code)
            if code is not None:
                sys.exit(code)
            command(*args, **kwargs)

        return REACH(run)

    return wrap


def across_hosts(
    report: Callable[..., HostReport | HostAction], *, required: bool = True
) -> Callable[[Callable[..., NoReturn]], Callable[..., NoReturn]]:
    """`SPEC...` and `--jobs` for a day-2 command: with several specs (or a fleet file) it runs
    on every host and prints one table (`report(**options)` says what runs, there and here:
    app/fleet.py `report_fleet` for a HostReport, `act_fleet` for a HostAction); with one
    spec, the command as it is (with none, when not `required`: `spec_path` None). Put it
    right under `click.command()`; the command then gets `spec_path` as one path."""

    def wrap(command: Callable[..., NoReturn]) -> Callable[..., NoReturn]:
        @functools.wraps(command)
        def run(*args: Any, spec_path: tuple[Path, ...], jobs: int, **kwargs: Any) -> NoReturn:
            from reconciler.app.fleet import (
                FleetRequest,
                HostReport,
                act_fleet,
                expanded,
                report_fleet,
            )

            app = click.get_current_context().find_object(AppContext) or AppContext()
            if kwargs.get("as_json") and kwargs.get("fmt") not in (None, "json"):
                raise click.UsageError(f"--json and --format {kwargs['fmt']} disagree: pass one")
            as_json = kwargs.get("fmt") == "json" or bool(kwargs.get("as_json"))
            code: int | None = None
            try:
                with expanded(app, spec_path) as (paths, labels):
                    if len(paths) > 1 or labels:  # several hosts, or a fleet file
                        request = FleetRequest(
                            paths,
                            jobs,
                            "json" if as_json else "human",
                            host_check_on(kwargs.get("host_check", "on")),
                            reach_of(kwargs.get("target"), kwargs.get("ssh_config")),
                            True,
                            labels,
                        )
                        asked = report(**kwargs)
                        if isinstance(asked, HostReport):
                            code = report_fleet(app, request, asked)
                        else:
                            code = act_fleet(app, request, asked)
            except Failed as exc:
                if exc.message:
                    app.error(f"error: {exc.message}")
                code = exc.code
            if code is not None:
                sys.exit(code)
            command(*args, spec_path=spec_path[0] if spec_path else None, **kwargs)

        spec = click.argument(
            "spec_path",
            metavar="SPEC..." if required else "[SPEC]...",
            nargs=-1,
            required=required,
            type=click.Path(path_type=Path),
        )
        return spec(JOBS(run))

    return wrap

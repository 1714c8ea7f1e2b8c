"""The `reconciler` command group: registers the commands, maps errors to exit codes.

The commands (reconciler/commands/) only parse arguments; the use cases are in reconciler/app/
and take an explicit AppContext, which a caller may pass as click's `obj` (tests do: a fake
host, a fake clock, captured output). docs/commands.md lists every command's exit codes.
"""

from __future__ import annotations

import signal
import sys
from dataclasses import replace
from importlib import import_module
from typing import Any

import click

from reconciler import __version__
from reconciler.app.context import EXIT_FAILED, EXIT_USAGE, AppContext

# The command modules, each with its COMMANDS, in the order `--help` lists them. A command is
# looked for module by module, so the timer's `apply` imports two of the six and `validate` one:
# the others' imports and click objects cost a fifth of `validate`'s start-up
# (bench/instructions.py).
_GROUPS = (
    "reconciler.commands.specs",
    "reconciler.commands.planning",
    "reconciler.commands.unattended",
    "reconciler.commands.doctor",
    "reconciler.commands.backup",
    "reconciler.commands.updates",
)


class _Group(click.Group):
    """Usage errors exit 64 (EX_USAGE), never click's 2, which `plan --detailed-exitcode` and
    `apply` use for "the host does not match the spec". Any unexpected exception becomes
    `error: Class: message` and a hint (a traceback only with --debug). Commands are
    registered from their modules (`_GROUPS`) when first looked for."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._unloaded = list(_GROUPS)

    def _load_next(self) -> bool:
        if not self._unloaded:
            return False
        for command in import_module(self._unloaded.pop(0)).COMMANDS:
            if command.name in self.commands:
                raise RuntimeError(f"two commands are named {command.name!r}")
            self.add_command(command)
        return True

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        while cmd_name not in self.commands and self._load_next():
            pass
        return super().get_command(ctx, cmd_name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        while self._load_next():
            pass
        return super().list_commands(ctx)

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: object,
    ) -> click.Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.UsageError as exc:
            _as_usage(exc)
            raise

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:  # a subcommand's arguments (parsed in here)
            _as_usage(exc)
            raise
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)
        except Exception as exc:  # the last line of defence: no traceback reaches a user
            app = ctx.find_object(AppContext)
            if app is not None and app.debug:
                raise
            click.echo(f"error: {type(exc).__name__}: {exc}", err=True)
            click.echo("(run with --debug for a traceback)", err=True)
            sys.exit(EXIT_FAILED)


def _as_usage(exc: click.UsageError) -> None:
    # click declares exit_code on the class (2); this one error exits 64 instead, and keeps
    # its own message (click's suggestions included).
    setattr(exc, "exit_code", EXIT_USAGE)  # noqa: B010


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks for unexpected errors.")
@click.version_option(__version__, prog_name="reconciler")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Keep a Clawdbot gateway host exactly as its YAML spec says."""
    app = ctx.obj if isinstance(ctx.obj, AppContext) else AppContext()
    ctx.obj = replace(app, debug=True) if debug else app


def main() -> None:
    """Console-script entry point."""
    signal.signal(signal.SIGTERM, _terminated)
    cli(prog_name="reconciler")


def _terminated(signum: int, frame: object) -> None:
    """SIGTERM: end our ssh sessions first (their remote commands end with them), then exit
    through the normal path, so every `finally` (control masters, temporary folders) runs."""
    from reconciler.shell.ssh import terminate_all

    terminate_all()
    raise SystemExit(128 + signum)

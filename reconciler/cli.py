"""Command-line wiring: parse arguments, call the core, print. No logic lives here."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from reconciler import __version__


class _Group(click.Group):
    """Turns any unexpected exception into a one-line message (traceback only with --debug)."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)
        except Exception as exc:  # the last line of defence: no traceback reaches a user
            if ctx.obj and ctx.obj.get("debug"):
                raise
            click.echo(f"error: {type(exc).__name__}: {exc}", err=True)
            click.echo("(run with --debug for a traceback)", err=True)
            sys.exit(1)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks for unexpected errors.")
@click.version_option(__version__, prog_name="reconciler")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Keep a Clawdbot gateway host exactly as its YAML spec says."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


@cli.command()
@click.argument("specs", nargs=-1, required=True, type=click.Path(path_type=Path))
def validate(specs: tuple[Path, ...]) -> None:
    """Check SPEC files against the schema and the semantic rules; report every error."""
    from reconciler.spec import SpecInvalid, load_spec

    failed = False
    for path in specs:
        try:
            load_spec(path)
        except SpecInvalid as exc:
            failed = True
            for error in exc.errors:
                click.echo(str(error), err=True)
        else:
            click.echo(f"{path}: ok")
    sys.exit(1 if failed else 0)


@cli.command()
def schema() -> None:
    """Print the spec's JSON Schema (for editors and check-jsonschema)."""
    from reconciler.spec.schema import schema_text

    click.echo(schema_text(), nl=False)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="reconciler")

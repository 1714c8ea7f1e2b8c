"""The command group imports a command's module when the command is looked for, so a run pays
only for its own commands; `--help` and the docs still see every command."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from importlib import import_module
from pathlib import Path

import click
from click.testing import CliRunner

import reconciler.commands
from reconciler import cli as cli_module
from reconciler.cli import cli

SPEC = Path(__file__).resolve().parents[2] / "specs" / "vm102.yaml"


def _command_modules() -> set[str]:
    found = set()
    for info in pkgutil.iter_modules(reconciler.commands.__path__):
        name = f"reconciler.commands.{info.name}"
        if hasattr(import_module(name), "COMMANDS"):
            found.add(name)
    return found


def test_every_module_with_commands_is_a_group() -> None:
    assert set(cli_module._GROUPS) == _command_modules()
    assert len(cli_module._GROUPS) == len(set(cli_module._GROUPS))


def test_help_lists_every_command_of_every_module() -> None:
    wanted = {
        c.name
        for m in _command_modules()
        for c in import_module(m).COMMANDS  # type: ignore[attr-defined]
    }
    assert set(cli.list_commands(click.Context(cli))) == wanted
    out = CliRunner().invoke(cli, ["--help"]).output
    assert all(f"  {name} " in out for name in wanted), out


def _modules_after(*argv: str) -> set[str]:
    script = (
        "import json, sys\n"
        "from reconciler.cli import cli\n"
        "try:\n"
        f"    cli({list(argv)!r}, prog_name='reconciler')\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('reconciler.commands.'))),"
        " file=sys.stderr)\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False, timeout=60
    )
    return set(json.loads(run.stderr.strip().splitlines()[-1]))


def test_validate_imports_only_its_own_module() -> None:
    loaded = _modules_after("validate", str(SPEC))
    assert loaded == {"reconciler.commands.specs", "reconciler.commands.wiring"}


def test_an_unknown_command_is_still_refused_with_every_command_known() -> None:
    result = CliRunner().invoke(cli, ["no-such-command"])
    assert result.exit_code == 64, result.output
    assert "No such command" in result.output

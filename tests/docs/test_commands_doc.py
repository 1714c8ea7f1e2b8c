"""docs/commands.md is the one table of every command and its exit codes; the CI example relies
on those codes explicitly."""

from __future__ import annotations

import re
from pathlib import Path

import click
import yaml

from reconciler.cli import cli

ROOT = Path(__file__).resolve().parents[2]


def test_every_command_has_a_row_with_its_exit_codes() -> None:
    text = (ROOT / "docs" / "commands.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith("| `reconciler ")]
    documented = {re.match(r"\| `reconciler ([a-z-]+)", row).group(1) for row in rows}  # type: ignore[union-attr]
    documented |= {"resume"} if re.search(r"/ `resume[` ]", text) else set()
    assert documented == set(cli.list_commands(click.Context(cli))), (
        "docs/commands.md and the CLI list other commands"
    )
    for row in rows:
        codes = row.rstrip(" |").rsplit("|", 1)[-1]
        assert re.search(r"\b0\b", codes), row
    assert "exit **64**" in text


def test_the_ci_example_reads_exit_codes_explicitly() -> None:
    workflow = yaml.safe_load((ROOT / "docs" / "ci-workflow.yml").read_text())
    steps = workflow["jobs"]["review"]["steps"]
    conditions = [str(step.get("if", "")) for step in steps]
    assert not any("!= '1'" in c for c in conditions), conditions
    post = next(s for s in steps if s.get("name") == "Post the plan")
    assert post["if"] == "steps.plan.outputs.status == '0' || steps.plan.outputs.status == '2'"
    keep = next(s for s in steps if str(s.get("name", "")).startswith("Keep the saved plan"))
    assert keep["if"] == "steps.plan.outputs.status == '2'"

"""The apply use case through the CLI on a fake host: dry runs of a git revision, usage
errors, and what apply says and returns when steps are blocked."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from fakehost import FakeHost
from review_cli import SPEC, FakeHostCli


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


@pytest.fixture
def host(tmp_path: Path) -> Iterator[FakeHostCli]:
    fake = FakeHost(tmp_path / "host")
    fake.set_node("v22.12.0")
    fake.set_gateway("2026.1.20")
    yield FakeHostCli(fake)
    fake.close()


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    """A clone whose committed spec has port 18809 and whose work tree says 18829."""
    repo = tmp_path / "clone"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    spec = repo / "vm102.yaml"
    spec.write_text(SPEC)
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "spec")
    spec.write_text(SPEC.replace("18809", "18829"))
    return spec


def test_a_dry_run_of_a_git_ref_plans_the_committed_bytes(host: FakeHostCli, clone: Path) -> None:
    # Issue 12 #1: the dry run planned the work tree (18829) and ignored --git-ref.
    result = host("apply", clone, "--dry-run", "--git-ref", "main", "--no-color")
    assert result.exit_code == 0, result.output
    assert "18809" in result.stdout and "18829" not in result.stdout
    assert "note: planning main@sha1:" in result.stderr and ":vm102.yaml" in result.stderr
    assert "Dry run: no command was run that changes the host." in result.stdout
    assert host.fake.mutating_calls() == []
    plain = host("apply", clone, "--dry-run", "--no-color")
    assert "18829" in plain.stdout  # without --git-ref: the file as it is


def test_a_dry_run_of_a_bad_ref_is_an_error(host: FakeHostCli, clone: Path) -> None:
    result = host("apply", clone, "--dry-run", "--git-ref", "nosuch")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ref 'nosuch' does not name a commit in ")
    assert result.stdout == "" and host.fake.mutating_calls() == []


def test_a_dry_run_of_a_ref_outside_a_clone_is_an_error(host: FakeHostCli, tmp_path: Path) -> None:
    spec = tmp_path / "plain.yaml"
    spec.write_text(SPEC)
    result = host("apply", spec, "--dry-run", "--git-ref", "main")
    assert result.exit_code == 1 and "is not inside a git work tree" in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["plan", "--detailed-exitcode", "--formt", "markdown", "SPEC"],
        ["plan", "SPEC", "--format", "yaml"],
        ["plan"],
        ["apply", "SPEC", "--lock-timeout", "-1"],
        ["diff", "SPEC"],
        ["nosuch"],
        ["validate", "-", "-"],
    ],
)
def test_usage_errors_exit_64_never_2(host: FakeHostCli, tmp_path: Path, args: list[str]) -> None:
    # Issue 12 #2: 2 means "the host differs" to `plan --detailed-exitcode` and `apply`.
    spec = tmp_path / "vm102.yaml"
    spec.write_text(SPEC)
    result = host(*[str(spec) if a == "SPEC" else a for a in args])
    assert result.exit_code == 64, result.output
    assert result.stdout == "" and host.fake.calls() == []


def test_help_names_what_apply_and_diff_take(host: FakeHostCli) -> None:
    apply_help = host("apply", "--help").stdout
    assert "apply [OPTIONS] SPEC|PLAN...\n" in apply_help
    diff_help = " ".join(host("diff", "--help").stdout.split())
    assert "--format [human|json|markdown] human: a coloured text diff;" in diff_help


def test_only_blocked_steps_left_is_not_converged_exit_2(host: FakeHostCli, tmp_path: Path) -> None:
    # Issue 12 #3: a user apply whose only steps are blocked printed the plan and exited 0
    # ("Converged" in the run record). Now: "Not converged: N steps blocked", reasons once.
    host.fake.set_linger("user", True)
    spec = tmp_path / "vm102.yaml"
    spec.write_text(
        "apiVersion: reconciler/v1\nhost:\n  name: vm102\n  user: user\n"
        'runtime:\n  node: ">=24"\nprofiles:\n  ops:\n    port: 18809\n'
    )
    state = tmp_path / "state"
    from dataclasses import replace

    from click.testing import CliRunner

    from reconciler.cli import cli

    app = replace(host.context(), state_dir=lambda: state)
    first = CliRunner().invoke(cli, ["apply", str(spec), "--yes", "--no-color"], obj=app)
    assert first.exit_code in (0, 2), first.output
    result = CliRunner().invoke(cli, ["apply", str(spec), "--yes", "--no-color"], obj=app)
    assert result.exit_code == 2, result.output
    assert "Converged" not in result.output
    assert result.stdout.endswith(
        "Plan: 0 to add, 0 to change, 0 to remove, 1 blocked.\n"
        "Not converged: 1 step blocked (why: above).\n"
    )
    assert "Blocked: 1 step, because:\n  - node v22.12.0 does not satisfy >=24" in result.stdout
    from reconciler.unattended.runs import read_records

    last = read_records(state)[-1]
    assert (last.result, last.blocked) == ("not-converged", 1)
    assert last.reason.startswith("1 step blocked: node v22.12.0 does not satisfy >=24")

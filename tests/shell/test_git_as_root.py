"""Root never runs git in a repository a user controls, and the git it starts for a user gets a
clean environment (issue 22; reconciler/shell/git.py's module docstring).

The attack, with a real second account: the user's clone holds a spec that root wrote there
(`sudo cp host.yaml ~user/hostspec/`), and its `.git/config` names a `core.fsmonitor` program
and its hooks a `reference-transaction` hook, both the user's. Root's `reconciler apply`
(`git status` for the run record) and the timer's source fetch ran git as the owner of the spec
file (root), with root's environment, in which `SUDO_UID` (set by sudo) makes git 2.35+ accept
the user's repository as root's own: the user's programs ran as root."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from real_users import as_user, real_user  # noqa: F401  (the fixture)

from reconciler.core.host import Account
from reconciler.shell.git import checkout, git_place, git_runner, tree_state, work_tree

SPEC = "apiVersion: reconciler/v1\n"
ROOT_ONLY = "RECONCILER_TEST_ROOT_ONLY"


def _spy(path: Path, report: Path) -> None:
    """A program that appends who ran it and its environment to `report`."""
    path.write_text(f"#!/bin/sh\n{{ echo uid=$(id -u); env; echo ---; }} >> {report}\nexit 0\n")
    path.chmod(0o755)


def _user_git(user: Account, *args: str) -> None:
    as_user(
        user,
        "git",
        "-c",
        "user.name=u",
        "-c",
        "user.email=u@example.invalid",
        *args,
        env={"GIT_CONFIG_NOSYSTEM": "1"},
    )


@pytest.fixture
def rigged(real_user: Account, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:  # noqa: F811
    """The user's clone (with an origin the user owns) whose config and hooks run the user's
    spy; the spec in it written by root. Root's environment is what `sudo` gives plus marks."""
    home = real_user.home
    report = home / "ran.log"
    _user_git(real_user, "init", "-q", "--bare", "-b", "main", "origin.git")
    _user_git(real_user, "clone", "-q", "origin.git", "hostspec")
    clone = home / "hostspec"
    spy = home / "spy.sh"
    _spy(spy, report)
    os.chown(spy, real_user.uid, real_user.gid)
    _user_git(real_user, "-C", "hostspec", "config", "core.fsmonitor", str(spy))
    hook = clone / ".git/hooks/reference-transaction"
    _spy(hook, report)
    os.chown(hook, real_user.uid, real_user.gid)
    spec = clone / "host.yaml"
    spec.write_text(SPEC)  # root's file in the user's clone
    assert spec.stat().st_uid == 0
    _user_git(real_user, "-C", "hostspec", "add", "-f", "host.yaml")
    _user_git(real_user, "-C", "hostspec", "commit", "-q", "-m", "spec")
    _user_git(real_user, "-C", "hostspec", "push", "-q", "origin", "main")
    report.unlink(missing_ok=True)  # the user's own git calls above ran the spy too
    monkeypatch.setenv("SUDO_UID", str(real_user.uid))  # as `sudo reconciler ...` has it
    monkeypatch.setenv("SUDO_USER", real_user.name)
    monkeypatch.setenv(ROOT_ONLY, "yes")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", "/root/.gitconfig-of-root")
    monkeypatch.setenv("PATH", "/root/bin:" + os.environ["PATH"])
    return spec, report


def _runs(report: Path) -> list[dict[str, str]]:
    """Each run of the spy: its uid and environment."""
    if not report.exists():
        return []
    runs = []
    for block in report.read_text().split("---\n"):
        lines = [line for line in block.splitlines() if "=" in line]
        if lines:
            runs.append(dict(line.split("=", 1) for line in lines))
    return runs


def test_git_for_a_spec_in_a_users_clone_runs_as_the_user_with_a_clean_environment(
    real_user: Account,  # noqa: F811
    rigged: tuple[Path, Path],
) -> None:
    if os.geteuid() != 0:
        pytest.skip("root's git is the question")
    spec, report = rigged
    assert git_place(spec).account.uid == real_user.uid  # the spec file is root's: not it
    runner = git_runner(spec)
    tree = work_tree(spec, runner.run)
    assert tree is not None and tree.relpath == "host.yaml"
    assert tree_state(tree, runner.run).commit  # `git status`: the fsmonitor hook ran
    revision = checkout(spec, "main", runner.run)  # `git fetch`: the reference-transaction hook
    assert revision.content == SPEC and revision.fetch_error is None
    runs = _runs(report)
    assert runs, "neither the fsmonitor program nor the hook ran: the test proves nothing"
    for run in runs:
        assert run["uid"] == str(real_user.uid), run  # never root
        assert run["HOME"] == str(real_user.home)
        assert "/root" not in run["PATH"]
        leaked = {k for k in run if k in (ROOT_ONLY, "SUDO_UID", "SUDO_USER", "GIT_CONFIG_GLOBAL")}
        assert leaked == set(), run
        assert run.get("GIT_TERMINAL_PROMPT") == "0", sorted(run)


def test_a_repository_planted_above_roots_folder_in_a_shared_one_is_never_read(
    real_user: Account,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Root's spec in root's folder under a sticky world-writable one (like /tmp): a user plants
    `.git` in the shared folder, with an fsmonitor program. Git looks no higher than root's
    folder (GIT_CEILING_DIRECTORIES), so it finds no repository and runs nothing."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    report = tmp_path / "ran.log"
    report.touch()
    report.chmod(0o666)
    as_user(real_user, "git", "init", "-q", str(shared))
    spy = shared / "spy.sh"
    _spy(spy, report)
    os.chown(spy, real_user.uid, real_user.gid)
    config = str(shared / ".git/config")  # (git run by the user there says "dubious ownership")
    as_user(real_user, "git", "config", "--file", config, "core.fsmonitor", str(spy))
    mine = shared / "root-folder"
    mine.mkdir(mode=0o755)
    spec = mine / "host.yaml"
    spec.write_text(SPEC)
    monkeypatch.setenv("SUDO_UID", str(real_user.uid))
    place = git_place(spec)
    assert place.account.uid == 0 and str(shared) in place.ceilings
    runner = git_runner(spec)
    assert work_tree(spec, runner.run) is None
    assert _runs(report) == []


def test_git_for_roots_own_clone_runs_as_root_without_our_git_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if os.geteuid() != 0:
        pytest.skip("root's own clone")
    clone = tmp_path / "clone"
    clone.mkdir(mode=0o755)
    subprocess.run(["git", "init", "-q", str(clone)], check=True)
    (clone / "host.yaml").write_text(SPEC)
    # A GIT_DIR of ours would point git at another repository altogether.
    monkeypatch.setenv("GIT_DIR", str(tmp_path / "elsewhere"))
    place = git_place(clone / "host.yaml")
    assert place.account.uid == 0
    tree = work_tree(clone / "host.yaml", git_runner(clone / "host.yaml").run)
    assert tree is not None and tree.top == clone

"""The metrics textfile directory as desired state: lstat facts in, one root `install -d` (or a
chmod as the user) out; refusals for links, files, foreign owners and paths root must not walk."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest

from reconciler.core.action import EnsureDirectory, RunCommand
from reconciler.core.plan import Plan
from reconciler.facts.sudo_check import SudoersPathProbe, SudoProbe, SudoVerdict, block_refused
from reconciler.kinds.metrics import MetricsDirKind, PathNode, TextfileDir, TextfileDirProbe
from reconciler.spec.model import Metrics

from .helpers import ROOT, USER, facts, make_host, make_spec

DIR = "/var/lib/prometheus/node-exporter"
INSTALL = ("install", "-d", "-m", "0775", "-o", "root", "-g", "user", DIR)
ROOT_TREE = (
    PathNode("/", "directory", 0, 0, 0o755),
    PathNode("/var", "directory", 0, 0, 0o755),
    PathNode("/var/lib", "directory", 0, 0, 0o755),
    PathNode("/var/lib/prometheus", "directory", 0, 0, 0o755),
)


def plan(node: PathNode, ancestors: tuple[PathNode, ...] = ROOT_TREE, invoker=ROOT):  # type: ignore[no-untyped-def]
    spec = replace(make_spec(), metrics=Metrics(node.path))
    found = TextfileDir(node, ancestors, "user")
    host = make_host(invoker=invoker)
    return MetricsDirKind().plan(spec, host, facts({TextfileDirProbe(node.path, 1000): found}))


CASES = [
    # (what is there, action kind or None, changes shown)
    (
        PathNode(DIR, "missing"),
        "create",
        {"owner": ("(absent)", "root"), "mode": ("(absent)", "0775")},
    ),
    # Debian's own directory: root:root 0755, written by root-run collectors only
    (PathNode(DIR, "directory", 0, 0, 0o755), "update", {"group": ("root", "user")}),
    (PathNode(DIR, "directory", 0, 1000, 0o755), "update", {"mode": ("0755", "0775")}),
    (PathNode(DIR, "directory", 0, 1000, 0o775), None, {}),
    (PathNode(DIR, "directory", 1000, 1000, 0o755), None, {}),
    (PathNode(DIR, "directory", 1000, 1000, 0o775), None, {}),
]


@pytest.mark.parametrize(("node", "kind", "changes"), CASES)
def test_directory_states(node: PathNode, kind: str | None, changes: dict[str, tuple]) -> None:  # type: ignore[type-arg]
    result = plan(node)
    assert result.errors == ()
    if kind is None:
        assert result.actions == ()
        return
    (action,) = result.actions
    assert (action.address, action.kind, action.blocked) == ("metrics.textfile_dir", kind, None)
    (op,) = action.operations
    assert isinstance(op, RunCommand) and op.command.argv == INSTALL
    assert op.command.needs_root and op.command.mutating
    shown = {c.path: (c.before, c.after) for c in action.changes}
    assert changes.items() <= shown.items(), shown


def test_the_users_own_directory_is_fixed_as_the_user() -> None:
    (action,) = plan(PathNode(DIR, "directory", 1000, 1000, 0o700)).actions
    (op,) = action.operations
    assert op == EnsureDirectory(Path(DIR), 0o755, "user") and not action.needs_root


@pytest.mark.parametrize(
    ("node", "ancestors", "message"),
    [
        (PathNode(DIR, "symlink", 0, 0, 0o777), ROOT_TREE, f"{DIR} is a symlink"),
        (PathNode(DIR, "file", 0, 0, 0o644), ROOT_TREE, f"{DIR} is not a directory"),
        (
            PathNode(DIR, "directory", 123, 123, 0o755),
            ROOT_TREE,
            f"{DIR} belongs to uid 123, neither root nor user; refusing to take it over",
        ),
        # a parent the user could rename or replace: root's install would follow it
        (
            PathNode("/home/user/metrics", "missing"),
            (
                PathNode("/", "directory", 0, 0, 0o755),
                PathNode("/home", "directory", 0, 0, 0o755),
                PathNode("/home/user", "directory", 1000, 1000, 0o700),
            ),
            "/home/user (directory, uid 1000, mode 0700) is not a directory only root can change",
        ),
        (
            PathNode("/tmp/metrics", "missing"),
            (PathNode("/", "directory", 0, 0, 0o755), PathNode("/tmp", "directory", 0, 0, 0o1777)),
            "/tmp (directory, uid 0, mode 1777) is not a directory only root can change",
        ),
        (
            PathNode("/srv/link/metrics", "missing"),
            (
                PathNode("/", "directory", 0, 0, 0o755),
                PathNode("/srv", "directory", 0, 0, 0o755),
                PathNode("/srv/link", "symlink", 0, 0, 0o777),
            ),
            "/srv/link (symlink, uid 0, mode 0777) is not a directory only root can change",
        ),
    ],
)
def test_refused(node: PathNode, ancestors: tuple[PathNode, ...], message: str) -> None:
    result = plan(node, ancestors)
    assert result.actions == ()
    (error,) = result.errors
    assert error.startswith("metrics.textfile_dir: ") and message in error, error


def test_no_metrics_section_no_probe_no_action() -> None:
    assert list(MetricsDirKind().probes(make_spec(), make_host())) == []
    assert MetricsDirKind().plan(make_spec(), make_host(), facts({})).actions == ()


def test_as_the_user_the_root_step_is_blocked_with_the_sudoers_rule() -> None:
    host = make_host(invoker=USER)
    result = plan(PathNode(DIR, "missing"), invoker=USER)
    refused = facts(
        {
            SudoProbe(INSTALL): SudoVerdict(False, "a password is required"),
            SudoersPathProbe("install"): "/usr/bin/install",
        }
    )
    (action,) = block_refused(Plan(result.actions), host, refused).actions
    assert action.blocked is not None
    assert action.blocked.endswith(
        "user ALL=(root) NOPASSWD: /usr/bin/install -d -m 0775 -o root -g user " + DIR
    ), action.blocked
    allowed = facts({SudoProbe(INSTALL): SudoVerdict(True)})
    (action,) = block_refused(Plan(result.actions), host, allowed).actions
    assert action.blocked is None


def test_the_probe_reads_the_path_and_its_ancestors_without_following(tmp_path: Path) -> None:
    target = tmp_path / "real"
    target.mkdir(mode=0o750)
    os.chmod(target, 0o750)
    link = tmp_path / "link"
    link.symlink_to(target)
    found = TextfileDirProbe(str(link / "sub"), os.getgid()).read(make_host())
    assert found.node == PathNode(str(link / "sub"), "missing")
    assert found.ancestors[0].path == "/" and found.ancestors[-1].kind == "symlink"
    direct = TextfileDirProbe(str(target), os.getgid()).read(make_host())
    assert (direct.node.kind, direct.node.mode, direct.node.uid) == (
        "directory",
        0o750,
        os.getuid(),
    )
    assert [a.path for a in direct.ancestors] == [str(p) for p in reversed(target.parents)]
    assert direct.group  # the group's name, or its number when it has none

"""A root-owned gateway prefix (issue 22, hole 3), with a real second account: a prefix under a
data root the user can write is refused by the plan and again by the runner (root created
`.install-*` there, and ran what the user planted in it); the installed entry's `--version` check
of a root install runs as the user, never as root."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from real_users import real_user, searchable  # noqa: F401  (the fixture)

from reconciler.core.action import InstallVersion
from reconciler.core.host import Account, HostContext
from reconciler.facts.files import path_chain
from reconciler.shell.runner import HostRunner

VERSION = "1.2.3"
ENTRY = "node_modules/gw/dist/entry.js"


@pytest.fixture
def root_only_base() -> Iterator[Path]:
    """A directory whose every component is root's and not group/world-writable, readable by
    all (what /opt is on a real host; /tmp, sticky and world-writable, is not one)."""
    if os.geteuid() != 0:
        pytest.skip("needs root")
    base = Path(tempfile.mkdtemp(prefix="reconciler-test-", dir="/var/lib"))
    base.chmod(0o755)
    if path_chain(base).not_root_only() is not None:
        shutil.rmtree(base)
        pytest.skip("/var/lib is not root-only here")
    yield base
    shutil.rmtree(base, ignore_errors=True)


def _tools(directory: Path, evidence: Path) -> tuple[str, str]:
    """An npm that "installs" an entry which, when run, appends its euid to `evidence` and
    prints the version (what a `file:` dependency or a swapped package.json can make npm do)."""
    directory.mkdir(parents=True, exist_ok=True)
    npm = directory / "npm"
    npm.write_text(
        "#!/bin/sh\n"
        'prefix="$3"\n'
        'mkdir -p "$prefix/node_modules/gw/dist"\n'
        f"cat > \"$prefix/{ENTRY}\" <<'EOF'\n"
        f"require('fs').appendFileSync('{evidence}', process.geteuid() + '\\n');\n"
        f"console.log('{VERSION}');\n"
        "EOF\n"
    )
    npm.chmod(0o755)
    node = shutil.which("node")
    if node is None:
        pytest.skip("needs node for the entry's --version check")
    return str(npm), node


def _op(prefix: Path, npm: str, node: str) -> InstallVersion:
    return InstallVersion(prefix, VERSION, "{}\n", ENTRY, npm, node, "system", 60)


def _root_host(user: Account) -> HostContext:
    return HostContext(socket.gethostname(), Account.current(), user, user.name)


def test_the_version_check_of_a_root_install_runs_as_the_user(
    tmp_path: Path,
    root_only_base: Path,
    real_user: Account,  # noqa: F811
) -> None:
    evidence_dir = tmp_path / "evidence"
    evidence_dir.mkdir()
    evidence_dir.chmod(0o1777)
    evidence = evidence_dir / "euids"
    npm, node = _tools(root_only_base / "bin", evidence)
    prefix = root_only_base / "clawdbot"
    done = HostRunner(_root_host(real_user)).execute(_op(prefix, npm, node))
    assert done.ok, done.detail
    assert evidence.read_text().split() == [str(real_user.uid)]
    installed = prefix / VERSION
    assert installed.is_dir() and os.stat(installed).st_uid == 0


def test_a_root_install_under_a_data_root_the_user_can_write_is_refused(
    tmp_path: Path,
    root_only_base: Path,
    real_user: Account,  # noqa: F811
) -> None:
    """The layout the red team used: `/srv/data` the user's, the root prefix below it. The user
    could swap the prefix at the confirmation prompt: root must not create `.install-*` there
    nor run anything from it."""
    data_root = root_only_base / "data"
    data_root.mkdir()
    os.chown(data_root, real_user.uid, real_user.gid)
    prefix = data_root / "clawdbot"
    prefix.mkdir()  # root's, as the plan saw it
    evidence = tmp_path / "euids"
    npm, node = _tools(root_only_base / "bin", evidence)
    done = HostRunner(_root_host(real_user)).execute(_op(prefix, npm, node))
    assert not done.ok
    assert "not a directory only root can change" in done.detail
    assert str(data_root) in done.detail
    assert list(prefix.iterdir()) == []  # no .install-*
    assert not evidence.exists()  # npm and the check never ran


def test_a_root_install_under_the_sticky_tmp_is_refused(
    tmp_path: Path,
    real_user: Account,  # noqa: F811
) -> None:
    searchable(tmp_path)
    prefix = tmp_path / "opt" / "clawdbot"
    evidence = tmp_path / "euids"
    npm, node = _tools(tmp_path / "bin", evidence)
    done = HostRunner(_root_host(real_user)).execute(_op(prefix, npm, node))
    assert not done.ok and "/tmp" in done.detail
    assert not prefix.exists() and not evidence.exists()

"""The timer's program and spec are checked with the permissions of the user who will run them
(issue 22): a venv whose interpreter lies under root's 0700 home passed when root planned, and
the user's timer then could not start."""

from __future__ import annotations

import os
import socket
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from real_users import real_user, searchable  # noqa: F401  (the fixture)

from reconciler.core.host import Account, HostContext
from reconciler.facts.invocation import Invocation, InvocationProbe
from reconciler.kinds._invocation import unusable_interpreter


def _host(user: Account) -> HostContext:
    return HostContext(socket.gethostname(), Account.current(), user, user.name)


def _venv(base: Path, mode: int) -> Path:
    """`base/venv/bin/python`, a link to this interpreter, in a directory of `mode`."""
    base.mkdir(mode=mode)
    base.chmod(mode)
    (base / "venv/bin").mkdir(parents=True)
    python = base / "venv/bin/python"
    python.symlink_to(sys.executable)
    return python


def test_a_program_only_root_can_reach_blocks_the_timer(
    tmp_path: Path,
    real_user: Account,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    python = _venv(tmp_path / "private", 0o700)  # like a venv under /root
    spec = real_user.home / "host.yaml"
    spec.write_text("apiVersion: reconciler/v1\n")
    os.chown(spec, real_user.uid, real_user.gid)
    monkeypatch.setattr(sys, "executable", str(python))
    found = InvocationProbe(spec, None).read(_host(real_user))
    assert found.user_cannot == f"cannot run {python}"
    # (the scratch rule, /tmp here, is another check: only this one is asked)
    why = unusable_interpreter(replace(found, scratch=None), _host(real_user), None)
    assert why is not None and f"{real_user.name} cannot run {python}" in why


def test_a_spec_the_user_cannot_read_blocks_the_timer(
    tmp_path: Path,
    real_user: Account,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sys, "executable", str(_public_python(tmp_path)))
    private = tmp_path / "root-specs"
    private.mkdir(mode=0o700)
    spec = private / "host.yaml"
    spec.write_text("apiVersion: reconciler/v1\n")
    found = InvocationProbe(spec, None).read(_host(real_user))
    assert found.user_cannot == f"cannot read {spec.resolve()}"


def test_what_the_user_can_run_and_read_passes(
    tmp_path: Path,
    real_user: Account,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    python = _public_python(tmp_path)
    monkeypatch.setattr(sys, "executable", str(python))
    spec = real_user.home / "host.yaml"
    spec.write_text("apiVersion: reconciler/v1\n")
    os.chown(spec, real_user.uid, real_user.gid)
    found = InvocationProbe(spec, None).read(_host(real_user))
    assert found.user_cannot is None
    assert unusable_interpreter(replace(found, scratch=None), _host(real_user), None) is None
    assert Invocation(str(python), spec, None).user_cannot is None


def _public_python(tmp_path: Path) -> Path:
    """An "interpreter" every user can run: /bin/sh stands in for it (only access is asked)."""
    searchable(tmp_path)
    (tmp_path / "opt/bin").mkdir(parents=True)
    python = tmp_path / "opt/bin/python"
    python.symlink_to("/bin/sh")
    return python

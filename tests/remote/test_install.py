"""What the reconcile timer runs after a remote apply: the agent installed at a versioned path
and the spec at a stable one, in the spec user's data folder; never a temporary path."""

from __future__ import annotations

import hashlib
import os
import pwd
import sys
from pathlib import Path

import pytest

from reconciler.core.host import Account, HostContext
from reconciler.facts import invocation
from reconciler.kinds._invocation import invocation_probe, program
from reconciler.kinds.reconcile_timer import exec_argv
from reconciler.remote import install
from reconciler.remote.install import install_for_timer, schema_checked_beside
from reconciler.spec import load_spec

REPO = Path(__file__).resolve().parents[2]
SPEC = REPO / "specs" / "vm102.yaml"  # the seed spec: timer on, no reconcile.source


def _host(home: Path) -> HostContext:
    me = Account("user", os.geteuid(), os.getegid(), home)
    return HostContext(hostname="vm102", invoker=me, user=me, user_name="user")


def test_from_the_shipped_agent_the_timer_runs_the_installed_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    agent = tmp_path / "cache" / "0123abcd.pyz"
    agent.parent.mkdir()
    agent.write_bytes(b"PK the agent")
    monkeypatch.setattr(invocation, "running_zipapp", lambda: agent)
    spec = load_spec(SPEC)
    home = tmp_path / "home"
    found = invocation_probe(spec, _host(home)).read(_host(home))
    name = f"reconciler-{__import__('reconciler').__version__}-"
    name += hashlib.sha256(agent.read_bytes()).hexdigest()[:16] + ".pyz"
    app = home / ".local/share/reconciler/agent" / name
    assert found.zipapp == str(app) and found.python == sys.executable
    assert found.spec == home / ".local/share/reconciler/spec.yaml"
    argv = exec_argv(found, None)
    assert argv[:4] == (sys.executable, str(app), "apply", str(found.spec))
    assert program(found, None) == (sys.executable, str(app))
    assert not [a for a in argv if a.startswith(str(agent.parent)) or "reconciler-remote-" in a]


def test_install_writes_the_agent_the_spec_and_its_digest_as_the_user(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    agent = tmp_path / "cache" / "0123abcd.pyz"
    agent.parent.mkdir()
    agent.write_bytes(b"PK the agent")
    home = tmp_path / "home"
    me = pwd.getpwuid(os.geteuid())
    monkeypatch.setattr(invocation, "running_zipapp", lambda: agent)
    monkeypatch.setattr(install, "running_zipapp", lambda: agent)
    monkeypatch.setattr(
        install.pwd,
        "getpwnam",
        lambda name: pwd.struct_passwd((name, "x", me.pw_uid, me.pw_gid, "", str(home), "/bin/sh")),
    )
    digest = hashlib.sha256(SPEC.read_bytes()).hexdigest()
    app = install_for_timer(SPEC, digest)
    assert app is not None and app.read_bytes() == agent.read_bytes()
    spec = home / ".local/share/reconciler/spec.yaml"
    assert spec.read_bytes() == SPEC.read_bytes()
    assert [p.stat().st_mode & 0o777 for p in (app, spec)] == [0o600, 0o600]
    assert [p.stat().st_mode & 0o777 for p in (app.parent, spec.parent)] == [0o700, 0o700]
    assert schema_checked_beside(["apply", str(spec), "--yes"]) == {digest}
    assert schema_checked_beside([str(tmp_path / "absent.yaml")]) == set()


def test_a_spec_whose_timer_needs_nothing_installed_installs_nothing(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC.read_text().replace("enabled: true", "enabled: false", 1))
    assert install_for_timer(spec, "0" * 64) is None


def test_with_a_git_source_the_timer_names_the_clone_not_an_installed_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    agent = tmp_path / "agent.pyz"
    agent.write_bytes(b"PK the agent")
    monkeypatch.setattr(invocation, "running_zipapp", lambda: agent)
    text = SPEC.read_text() + "  source: {git: ~/hostspec}\n"
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(text)
    spec = load_spec(spec_file)
    assert spec.reconcile.source is not None
    home = tmp_path / "home"
    found = invocation_probe(spec, _host(home)).read(_host(home))
    assert found.zipapp is None and found.clone == (home / "hostspec").resolve()
    assert install_for_timer(spec_file, "0" * 64) is None  # nothing to install for it


def test_a_backup_alone_installs_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The backup timer runs the same program: a spec with backups and no reconcile timer
    still gets the agent installed (else its backup unit would name a missing file)."""
    agent = tmp_path / "agent.pyz"
    agent.write_bytes(b"PK the agent")
    home = tmp_path / "home"
    me = pwd.getpwuid(os.geteuid())
    monkeypatch.setattr(install, "running_zipapp", lambda: agent)
    monkeypatch.setattr(
        install.pwd,
        "getpwnam",
        lambda name: pwd.struct_passwd((name, "x", me.pw_uid, me.pw_gid, "", str(home), "/bin/sh")),
    )
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(
        SPEC.read_text().replace("enabled: true", "enabled: false", 1)
        + "backup:\n  repository: ~/backups/gateway\n  password_file: ~/.config/restic/pw\n"
    )
    assert load_spec(spec_file).backup is not None
    app = install_for_timer(spec_file, "0" * 64)
    assert app is not None and app.read_bytes() == agent.read_bytes()

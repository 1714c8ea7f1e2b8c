"""The bootstrap, run here exactly as a target runs it (`python3 -c SOURCE HASH MODE`): the agent
kept extracted and byte-compiled in the login user's cache, installed atomically, checked before
every run, and refused in a cache that is not the user's own."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from real_users import real_user

from reconciler.core.host import Account
from reconciler.facts import invocation
from reconciler.remote import bootstrap
from reconciler.remote.client import _why_no_result
from reconciler.remote.protocol import RESULT_MARK
from reconciler.remote.zipapp import Agent, build_agent

__all__ = ["real_user"]  # the fixture, used by name

VERSION = json.dumps({"protocol": 1, "argv": ["--version"], "files": {}, "want": []}).encode()
# A python3 every account may run (the venv's interpreter may lie under root's home).
SYSTEM_PYTHON = "/usr/bin/python3"


@pytest.fixture(scope="module")
def agent() -> Agent:
    return build_agent()


def _boot(
    cache: Path,
    agent: Agent,
    mode: str,
    *,
    python: str = sys.executable,
    as_user: Account | None = None,
) -> subprocess.CompletedProcess[bytes]:
    install = mode == "install"
    argv = bootstrap.remote_argv(
        agent.sha256, python=python, install_size=len(agent.data) if install else None
    )
    if as_user is not None:
        ids = [f"--reuid={as_user.uid}", f"--regid={as_user.gid}", "--clear-groups"]
        argv = ["setpriv", *ids, *argv]
    # As sshd starts it: nothing of this checkout on the path, the cache where the env says.
    env = {"PATH": os.environ["PATH"], "HOME": str(cache.parent), "XDG_CACHE_HOME": str(cache)}
    stdin = (agent.data if install else b"") + VERSION
    return subprocess.run(argv, input=stdin, capture_output=True, env=env, cwd="/", timeout=120)


def _ran(done: subprocess.CompletedProcess[bytes]) -> bool:
    return (
        done.returncode == 0
        and b"reconciler, version" in done.stdout
        and RESULT_MARK in done.stdout
    )


def _tree(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file below `folder`: (size, mtime_ns), to see that a run changes nothing."""
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_installed_extracted_and_compiled_then_run_from_there(tmp_path: Path, agent: Agent) -> None:
    cache = tmp_path / "cache"
    assert _boot(cache, agent, "run").returncode == bootstrap.NOT_CACHED
    assert _ran(_boot(cache, agent, "install"))
    folder = cache / "reconciler" / "agent"
    home = folder / agent.sha256
    assert [p.name for p in folder.iterdir()] == [agent.sha256]  # no temporary folder left
    assert folder.stat().st_mode & 0o777 == 0o700 and home.stat().st_mode & 0o777 == 0o700
    assert (home / invocation.SHIPPED_ARCHIVE).read_bytes() == agent.data
    tag = sys.implementation.cache_tag
    assert (home / "reconciler" / "__pycache__" / f"agent.{tag}.pyc").is_file()
    assert (home / "yaml" / "__pycache__" / f"__init__.{tag}.pyc").is_file()
    before = _tree(home)
    done = _boot(cache, agent, "run")
    assert _ran(done), done.stderr
    assert _tree(home) == before  # nothing written there by a run (no bytecode, no record)


@pytest.mark.parametrize(
    "damage",
    ["changed source", "planted module", "missing bytecode", "no record", "symlinked file"],
)
def test_a_folder_that_is_not_what_was_installed_is_never_run(
    tmp_path: Path, agent: Agent, damage: str
) -> None:
    cache = tmp_path / "cache"
    assert _ran(_boot(cache, agent, "install"))
    home = cache / "reconciler" / "agent" / agent.sha256
    cli = home / "reconciler" / "cli.py"
    if damage == "changed source":
        cli.write_text(cli.read_text() + "\nraise SystemExit('not the shipped code')\n")
    elif damage == "planted module":  # the folder is first on sys.path: it would shadow json
        (home / "json.py").write_text("raise SystemExit('planted')\n")
    elif damage == "missing bytecode":
        next((home / "reconciler" / "__pycache__").glob("cli.*.pyc")).unlink()
    elif damage == "no record":  # as a folder whose install never finished
        (home / ".tree").unlink()
    else:
        cli.unlink()
        cli.symlink_to(tmp_path / "elsewhere.py")
    assert _boot(cache, agent, "run").returncode == bootstrap.NOT_CACHED
    # the client's answer to "not there": the install, which replaces the folder
    assert _ran(_boot(cache, agent, "install"))
    assert not (home / "json.py").exists() and not cli.is_symlink()
    assert "not the shipped code" not in cli.read_text()
    assert _ran(_boot(cache, agent, "run"))
    assert [p.name for p in home.parent.iterdir()] == [agent.sha256]


def test_a_half_written_install_is_not_used(tmp_path: Path, agent: Agent) -> None:
    cache = tmp_path / "cache"
    assert _ran(_boot(cache, agent, "install"))
    home = cache / "reconciler" / "agent" / agent.sha256
    # as if an install were interrupted before its rename: only the temporary folder exists
    home.rename(home.with_name(f".{agent.sha256}.4242.tmp"))
    assert _boot(cache, agent, "run").returncode == bootstrap.NOT_CACHED


def test_installs_at_once_leave_one_complete_folder(tmp_path: Path, agent: Agent) -> None:
    cache = tmp_path / "cache"
    (cache / "reconciler" / "agent").mkdir(parents=True, mode=0o700)
    os.chmod(cache / "reconciler", 0o700)
    argv = bootstrap.remote_argv(agent.sha256, install_size=len(agent.data))
    argv[0] = sys.executable
    env = {"PATH": os.environ["PATH"], "XDG_CACHE_HOME": str(cache)}
    running = [
        subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
        )
        for _ in range(3)
    ]
    results = [p.communicate(agent.data + VERSION, timeout=120) for p in running]
    assert [p.returncode for p in running] == [0, 0, 0], [r[1] for r in results]
    assert all(b"reconciler, version" in out for out, _ in results)
    folder = cache / "reconciler" / "agent"
    assert [p.name for p in folder.iterdir()] == [agent.sha256]
    assert _ran(_boot(cache, agent, "run"))


def _refused(done: subprocess.CompletedProcess[bytes], why: str) -> str:
    assert done.returncode == bootstrap.BAD_CACHE, done.stderr
    message = _why_no_result("ssh://h", "python3", done.returncode, done.stderr.decode())
    assert why in message and "reconciler/agent" in message, message
    return message


def test_a_cache_others_can_write_is_refused(tmp_path: Path, agent: Agent) -> None:
    cache = tmp_path / "cache"
    assert _ran(_boot(cache, agent, "install"))
    folder = cache / "reconciler" / "agent"
    folder.chmod(0o777)
    _refused(_boot(cache, agent, "run"), "is writable by others")
    _refused(_boot(cache, agent, "install"), "is writable by others")
    folder.chmod(0o700)
    (folder / agent.sha256).rename(tmp_path / "moved")
    (folder / agent.sha256).symlink_to(tmp_path / "moved")  # someone else's folder, linked in
    _refused(_boot(cache, agent, "run"), "is not a folder")


@pytest.fixture
def system_python() -> str:
    done = subprocess.run(
        [SYSTEM_PYTHON, "-c", "import sys; print(sys.version_info >= (3, 11))"],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.stdout.strip() != "True":
        pytest.skip(f"needs {SYSTEM_PYTHON} >= 3.11 (the account's interpreter)")
    return SYSTEM_PYTHON


def test_a_cache_of_another_account_is_refused(
    tmp_path: Path, agent: Agent, real_user: Account
) -> None:
    """Root must not run code another account could have put in its cache (root's own cache
    pointed into a user's home, or the user's folder in root's)."""
    cache = tmp_path / "cache"
    assert _ran(_boot(cache, agent, "install"))
    os.chown(cache / "reconciler", real_user.uid, real_user.gid)
    message = _refused(_boot(cache, agent, "run"), f"belongs to uid {real_user.uid}")
    assert "(uid 0)" in message
    _refused(_boot(cache, agent, "install"), f"belongs to uid {real_user.uid}")


def test_a_cache_the_account_cannot_write_is_refused(
    tmp_path: Path, agent: Agent, real_user: Account, system_python: str
) -> None:
    cache = real_user.home / ".cache"
    cache.mkdir(mode=0o500)
    os.chown(cache, real_user.uid, real_user.gid)
    done = _boot(cache, agent, "install", python=system_python, as_user=real_user)
    _refused(done, "Permission denied")
    assert list(cache.iterdir()) == []
    # made writable, the same account installs and runs there
    cache.chmod(0o700)
    assert _ran(_boot(cache, agent, "install", python=system_python, as_user=real_user))
    assert _ran(_boot(cache, agent, "run", python=system_python, as_user=real_user))


def test_the_running_zipapp_is_found_beside_the_extracted_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The timer's install copies the zipapp: from the extracted folder, it is the one kept
    there; run from the zipapp itself, the zipapp; from a checkout, none."""
    import reconciler

    home = tmp_path / "0123abcd"
    (home / "reconciler").mkdir(parents=True)
    monkeypatch.setattr(reconciler, "__file__", str(home / "reconciler" / "__init__.py"))
    assert invocation.running_zipapp() is None
    (home / invocation.SHIPPED_ARCHIVE).write_bytes(b"PK")
    assert invocation.running_zipapp() == home / invocation.SHIPPED_ARCHIVE
    shutil.rmtree(home)
    home.write_bytes(b"PK")  # `python3 AGENT.pyz`: the archive is the import root
    assert invocation.running_zipapp() == home

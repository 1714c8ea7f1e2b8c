"""Suite-wide settings: hypothesis profiles (CI runs more examples than a developer's loop), and
a private temp root when run as root."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from hypothesis import HealthCheck, settings

if TYPE_CHECKING:
    from reconciler.core.host import Account

settings.register_profile("dev", max_examples=20, deadline=None)
settings.register_profile(
    "ci", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

# A real sshd on loopback for the SSH transport tests (tests/sshd.py).
pytest_plugins = ["sshd"]

# The spec cache (reconciler/spec/validation_cache.py) lives in XDG_CACHE_HOME: the suite gets
# its own, so that no run reads a developer's cache or leaves entries in it.
_CACHE_HOME = tempfile.mkdtemp(prefix="reconciler-test-cache-")
os.environ["XDG_CACHE_HOME"] = _CACHE_HOME
atexit.register(shutil.rmtree, _CACHE_HOME, True)


# The state directory (run records, lock, suspension) too: a test that forgets to name its own
# must not write into the developer's (or CI's) real ~/.local/state/reconciler.
_STATE_HOME = tempfile.mkdtemp(prefix="reconciler-test-state-")
os.environ["XDG_STATE_HOME"] = _STATE_HOME
atexit.register(shutil.rmtree, _STATE_HOME, True)


def _real_state_dir() -> Path:
    import pwd

    return Path(pwd.getpwuid(os.getuid()).pw_dir) / ".local" / "state" / "reconciler"


# Bound now: a test may replace os.lstat or os.listdir (tests/test_snapshot.py forbids every
# host access) while the guard below still has to look.
_LISTDIR, _LSTAT = os.listdir, os.lstat


def _contents(directory: Path) -> dict[str, bytes]:
    """The small files of the real state directory (records, suspension, lock holder)."""
    import stat

    out: dict[str, bytes] = {}
    try:
        names = sorted(_LISTDIR(directory))
    except OSError:
        return out
    for name in names:
        path = os.path.join(directory, name)
        try:
            info = _LSTAT(path)
            if stat.S_ISREG(info.st_mode) and info.st_size < 1 << 22:
                with open(path, "rb") as handle:
                    out[name] = handle.read()
        except OSError:
            continue
    return out


@pytest.fixture(autouse=True)
def _real_state_untouched(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    """Fail the test that writes to the real ~/.local/state/reconciler (issue 22).

    What changed there is ours when it names this session's temp root (every spec and state a
    test uses lives there) or this process's pid (a run record of an in-process CLI call): other
    sessions on the machine (other worktrees) may write there too.
    """
    real = _real_state_dir()
    before = _contents(real)
    yield
    marks = (str(tmp_path_factory.getbasetemp()).encode(), f'"pid":{os.getpid()},'.encode())
    written = [
        name
        for name, data in _contents(real).items()
        if data != before.get(name)
        and any(mark in data[len(before.get(name, b"")) :] for mark in marks)
    ]
    assert written == [], (
        f"{request.node.nodeid} wrote to the real state directory {real} ({', '.join(written)}): "
        "give it a state directory of its own (AppContext(state_dir=...), XDG_STATE_HOME, state=)"
    )


@pytest.fixture(autouse=True)
def _private_host_lock(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Root's apply lock lives in /run/reconciler; tests get a directory of their own (tests of
    several worktrees run at once on this machine and must not lock each other out)."""
    import reconciler.unattended.lock as lock

    directory = tmp_path_factory.mktemp("run-reconciler")
    directory.chmod(0o755)
    monkeypatch.setattr(lock, "ROOT_LOCK_DIR", directory)


def pytest_configure(config: pytest.Config) -> None:
    """As root, give this session a temp root the fake user's uid can traverse.

    Tests drop to the fake user's uid for real (reconciler.system.as_user), so every parent of a
    fake home must stay searchable. pytest resets the shared /tmp/pytest-of-root to 0700 at every
    session start, which, with several sessions at once, would pull the floor from under a
    running one; a private per-session directory (0711) cannot be reset by another session.
    """
    if os.geteuid() != 0 or config.option.basetemp or hasattr(config, "workerinput"):
        return
    base = Path(tempfile.mkdtemp(prefix="reconciler-tests-"))
    config.option.basetemp = str(base)
    config.add_cleanup(lambda: shutil.rmtree(base, ignore_errors=True))


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects anything
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`make e2e` runs tests/e2e and `make fast` deselects the e2e mark: an e2e test anywhere
    else would run in neither, so it is refused here."""
    stray = [
        i.nodeid for i in items if i.get_closest_marker("e2e") and "tests/e2e/" not in i.nodeid
    ]
    if stray:
        raise pytest.UsageError(
            f"e2e tests belong in tests/e2e (make e2e runs only there): {stray}"
        )
    # The long tests first (a stable sort keeps the rest in order): pytest-xdist deals its first
    # batch round-robin, so each starts at once on a worker of its own instead of ending the
    # suite alone on one core while the others idle.
    items.sort(key=lambda i: i.get_closest_marker("long") is None)


@pytest.fixture(scope="session", autouse=True)
def _searchable_basetemp(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> None:
    # pytest (re)creates the base temp directory 0700; the fake user must be able to pass.
    # A pytest-xdist worker's (`make fast`) lies inside the controller's, recreated 0700 too.
    if os.geteuid() == 0:
        base = tmp_path_factory.getbasetemp()
        base.chmod(0o711)
        if hasattr(request.config, "workerinput"):
            base.parent.chmod(0o711)


@pytest.fixture
def local_user(tmp_path: Path) -> Iterator[Account]:
    """A real local account (useradd) with its home in tmp_path, removed afterwards: for the
    attacks a local user makes, as the kernel and NSS really see that user. Needs root."""
    import secrets
    import subprocess

    from reconciler.core.host import Account

    if os.geteuid() != 0:
        pytest.skip("creates a local user: needs root")
    name = f"rp-t{secrets.token_hex(5)}"
    tmp_path.chmod(0o711)  # the user must reach its home
    home = tmp_path / name
    subprocess.run(
        ["useradd", "--no-create-home", "--home-dir", str(home), "--shell", "/bin/sh",
         "--user-group", name],
        check=True, capture_output=True,
    )  # fmt: skip
    try:
        account = Account.lookup(name)
        assert account is not None
        home.mkdir(mode=0o700)
        os.chown(home, account.uid, account.gid)
        yield account
    finally:
        subprocess.run(["userdel", name], check=False, capture_output=True)

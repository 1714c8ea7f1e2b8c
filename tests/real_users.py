"""A real local account for the tests where root must not become the user's tool: `useradd`,
a home of its own under the test's temp directory, `userdel` afterwards. Root only (the tests
that use it skip and say why otherwise): the attacks these tests repeat need a real uid that is
not ours, so that the kernel, not the reconciler, says who may do what."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.core.host import Account


def _run_locked(argv: list[str]) -> None:
    # Other sessions on this machine add users too: shadow's lock is busy for a moment.
    for _ in range(50):
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        if done.returncode == 0:
            return
        if "lock" not in done.stderr:
            raise RuntimeError(f"{argv}: {done.stderr.strip()}")
        time.sleep(0.2)
    raise RuntimeError(f"{argv}: /etc/passwd stayed locked")


def searchable(path: Path) -> None:
    """Let every account pass through `path` and its parents up to the temp root (o+x)."""
    for directory in (path, *path.parents):
        if directory == Path("/") or directory == Path("/tmp"):
            break
        mode = os.stat(directory).st_mode
        os.chmod(directory, mode | 0o011)


@pytest.fixture
def real_user(tmp_path: Path) -> Iterator[Account]:
    """A fresh account named `rd-<random>` whose home (0700, its own) is `tmp_path/<name>`."""
    if os.geteuid() != 0 or shutil.which("useradd") is None:
        pytest.skip("needs root and useradd (a real second account)")
    name = "rd-" + secrets.token_hex(5)
    home = tmp_path / name
    _run_locked(["useradd", "-M", "-d", str(home), "-U", "-s", "/bin/sh", name])
    try:
        account = Account.lookup(name)
        assert account is not None
        home.mkdir(mode=0o700)
        os.chown(home, account.uid, account.gid)
        searchable(tmp_path)
        yield account
    finally:
        _run_locked(["userdel", name])


def as_user(account: Account, *argv: str, env: dict[str, str] | None = None) -> str:
    """Run argv as `account` (what the user does on their own), return its stdout."""
    done = subprocess.run(
        ["runuser", "-u", account.name, "--", *argv],
        capture_output=True,
        cwd=account.home,
        text=True,
        check=True,
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": str(account.home), **(env or {})},
    )
    return done.stdout


EVIL_C = r"""
#include <stdio.h>
#include <unistd.h>
__attribute__((constructor)) static void evil(void) {
    FILE *f = fopen("%s", "a");
    if (f) { fprintf(f, "euid=%%d\n", (int)geteuid()); fclose(f); }
}
"""


class Attack:
    """The red team's planted files in a real user's home: an `LD_PRELOAD` object whose
    constructor appends the euid of every process that loads it, a `runuser`/`sudo`/`env` in
    `~/bin` that leave a mark when anyone runs them, and an env file naming both."""

    def __init__(self, tmp_path: Path, user: Account) -> None:
        if shutil.which("cc") is None:
            pytest.skip("needs a C compiler for the LD_PRELOAD object")
        self.user = user
        self.evidence_dir = tmp_path / "evidence"
        self.evidence_dir.mkdir()
        os.chmod(self.evidence_dir, 0o1777)
        self.loaded = self.evidence_dir / "loaded"
        self.planted = self.evidence_dir / "planted"
        home = user.home
        source = tmp_path / "evil.c"
        source.write_text(EVIL_C % self.loaded)
        self.evil = home / "evil.so"
        subprocess.run(["cc", "-shared", "-fPIC", "-o", str(self.evil), str(source)], check=True)
        (home / "bin").mkdir()
        for name in ("runuser", "sudo", "env"):
            tool = home / "bin" / name
            tool.write_text(f'#!/bin/sh\necho "{name} $(id -u)" >> {self.planted}\nexit 0\n')
            tool.chmod(0o755)
        self.env_file = home / "gateway.env"
        self.env_file.write_text(
            f"LD_PRELOAD={self.evil}\nPATH={home}/bin:/usr/bin:/bin\n"
            "CLAWDBOT_GATEWAY_TOKEN=tok-0123456789abcdef\n"
        )
        self.env_file.chmod(0o600)
        for path in (self.evil, home / "bin", *(home / "bin").iterdir(), self.env_file):
            os.lchown(path, user.uid, user.gid)

    def root_loaded_it(self) -> list[str]:
        """The euids that loaded the user's object other than the user's own."""
        if not self.loaded.exists():
            return []
        return [
            line for line in self.loaded.read_text().splitlines() if line != f"euid={self.user.uid}"
        ]

    def planted_ran(self) -> str:
        """`NAME EUID` lines of every planted tool that ran, whoever ran it."""
        return self.planted.read_text() if self.planted.exists() else ""

    def planted_ran_as_root(self) -> list[str]:
        return [line for line in self.planted_ran().splitlines() if line.endswith(" 0")]

"""What we know about the machine before probing: who we are, whom the spec is for, where."""

from __future__ import annotations

import os
import pwd
from dataclasses import field
from pathlib import Path

from reconciler.frozen import frozen

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def user_sudoers_line(invoker: str, user: str) -> str:
    """The sudoers rule that lets an admin account act as the spec's user: anything as that
    user (what the user could do anyway), nothing as root."""
    return f"{invoker} ALL=({user}) NOPASSWD: ALL"


@frozen
class Account:
    """A POSIX account, as /etc/passwd has it."""

    name: str
    uid: int
    gid: int
    home: Path

    @classmethod
    def lookup(cls, name: str) -> Account | None:
        """The account called `name`, or None when there is no such user."""
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            return None
        return cls(entry.pw_name, entry.pw_uid, entry.pw_gid, Path(entry.pw_dir))

    @classmethod
    def current(cls) -> Account:
        """Whoever runs this process (effective uid)."""
        uid = os.geteuid()
        try:
            entry = pwd.getpwuid(uid)
        except KeyError:
            return cls(str(uid), uid, os.getegid(), Path(os.environ.get("HOME", "/")))
        return cls(entry.pw_name, entry.pw_uid, entry.pw_gid, Path(entry.pw_dir))


@frozen
class RecordedLookups:
    """The lookups kinds make outside probes (finding programs, listing the unit directory),
    answered from a snapshot instead of this machine.

    A HostContext built from a snapshot carries one, so that planning against the snapshot
    reads no file of the machine it runs on (PR CI plans for a host it cannot reach).
    """

    programs: tuple[tuple[str, str | None], ...] = ()  # program -> absolute path (None: absent)
    directories: tuple[tuple[Path, tuple[str, ...]], ...] = ()  # directory -> entry names

    def program(self, name: str) -> str | None:
        """Where the snapshot found `name` (None: not installed, or never looked up)."""
        return dict(self.programs).get(name)

    def listing(self, path: Path) -> tuple[str, ...]:
        """The entry names recorded for the directory `path` (empty: none recorded)."""
        return dict(self.directories).get(path, ())


@frozen
class HostContext:
    """The fixed facts every probe and kind may use; read in-process, no subprocess.

    Tests build one pointing at a fake host's directories; `discover` reads the real machine.
    """

    hostname: str
    invoker: Account
    user: Account | None  # the spec's user; None when it does not exist on this host
    user_name: str
    linger_dir: Path = Path("/var/lib/systemd/linger")
    proc_root: Path = Path("/proc")
    # Exists when systemd is the init system (sd_booted(3)); tests point it at a fake host's.
    systemd_dir: Path = Path("/run/systemd/system")
    # Where to look for node, the gateway and npm on behalf of the user (the user's login PATH is
    # not available to a timer or to root, so we search the usual places explicitly).
    search_path: tuple[str, ...] = field(default_factory=lambda: tuple(DEFAULT_PATH.split(":")))

    # None: derived from the invoker's uid. A test that runs as root sets False to model a
    # normal user on a fake host without switching uids for real.
    privileged: bool | None = None
    # An admin account (neither root nor the user) that `sudo -n -u USER` lets act as the user:
    # the user's commands and file work then go through sudo (system/as_user.py ThroughSudo).
    # Set by whoever checked sudo (app/context.py), never assumed.
    sudo_to_user: bool = False
    # Set only for a host read back from a snapshot: lookups come from it, never from the disk.
    recorded: RecordedLookups | None = None

    @property
    def is_root(self) -> bool:
        return self.invoker.uid == 0 if self.privileged is None else self.privileged

    @property
    def acting_as_user(self) -> bool:
        """True when commands for the spec's user can run directly (we are that user)."""
        return self.user is not None and self.invoker.uid == self.user.uid

    @property
    def can_act_for_user(self) -> bool:
        """True when we can run user-scope commands: we are the user, root (via runuser), or an
        admin account that sudo lets act as the user (`sudo -n -u USER`)."""
        return self.user is not None and (self.acting_as_user or self.is_root or self.sudo_to_user)

    def runtime_dir(self) -> Path | None:
        return Path(f"/run/user/{self.user.uid}") if self.user else None

    def user_search_path(self) -> tuple[str, ...]:
        """PATH entries for finding the user's tools: their npm prefix and ~/.local/bin first."""
        if self.user is None:
            return self.search_path
        home = self.user.home
        personal = (
            str(home / ".npm-global/bin"),
            str(home / ".local/bin"),
            str(home / ".volta/bin"),
            str(home / ".local/share/pnpm"),
            str(home / "bin"),
        )
        return personal + self.search_path

    @classmethod
    def discover(cls, user_name: str, *, path: str | None = None) -> HostContext:
        """Read the real machine: hostname, the invoking account and the spec's user."""
        invoker = Account.current()
        user = Account.lookup(user_name)
        search = (path if path is not None else os.environ.get("PATH", DEFAULT_PATH)).split(":")
        if invoker.uid == 0 and user is not None and user.uid != 0:
            # Root's PATH (`/root/bin`, a venv's bin) is nothing the user's commands may search:
            # the user's tools are looked up in their own places and the system's only.
            search = []
        # Keep PATH order but add the standard places a timer's minimal PATH may lack.
        merged = tuple(dict.fromkeys([p for p in search if p] + DEFAULT_PATH.split(":")))
        return cls(
            hostname=os.uname().nodename,  # gethostname(2) on Linux; no socket import
            invoker=invoker,
            user=user,
            user_name=user_name,
            search_path=merged,
        )

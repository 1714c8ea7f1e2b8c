"""Programs the user's gateways need: where they are and which version they report."""

from __future__ import annotations

import re
import shutil
from functools import partial

from reconciler.core.command import Command, CommandResult
from reconciler.core.host import HostContext
from reconciler.core.probe import Probe
from reconciler.facts.codec import RecordedHost, recorded
from reconciler.frozen import frozen
from reconciler.system.as_user import acting_account, call_as

_VERSION_TOKEN = re.compile(r"v?\d+\.\d+(?:\.\d+)?(?:[-+][\w.]+)?")


def find_program(program: str, search: tuple[str, ...]) -> str | None:
    """Absolute path of `program` on `search` (an explicit path: itself, when executable).

    Reads the machine: only probes (and `reconciler probe` recording a snapshot) call it.
    """
    if "/" in program:
        return program if shutil.which(program) else None
    return shutil.which(program, path=":".join(search))


def find_as_user(program: str, search: tuple[str, ...], host: HostContext) -> str | None:
    """`find_program` with the user's eyes: an admin account acting as the user through sudo
    cannot look into the user's 0700 home itself, so its helper looks (system/as_user.py)."""
    if host.sudo_to_user and not host.is_root:
        found = call_as(acting_account(host), partial(find_program, program, search))
        return found if isinstance(found, str) else None
    return find_program(program, search)


def locate(program: str, host: HostContext) -> str | None:
    """Absolute path of `program` as the spec's user would find it (their npm prefix first)."""
    return find_as_user(program, host.user_search_path(), host)


@recorded
@frozen
class ProgramLocation:
    """Where a program is: its absolute path, None when it is not installed."""

    path: str | None = None


@recorded
@frozen
class ProgramLocationProbe(Probe[ProgramLocation]):
    """Where `program` is on `search` (the user's search path), in-process.

    A discovery probe: the version probe of a program is declared with the path found here.
    """

    program: str
    search: tuple[str, ...]

    @classmethod
    def for_user(cls, program: str, host: HostContext) -> ProgramLocationProbe:
        """The probe that finds `program` as the spec's user would (their npm prefix first)."""
        return cls(program, () if "/" in program else host.user_search_path())

    def read(self, host: HostContext) -> ProgramLocation:
        return ProgramLocation(find_as_user(self.program, self.search, host))

    def answer_from(self, recorded: RecordedHost) -> ProgramLocation | None:
        """Where the recorded host had it (snapshots list the programs kinds look for); a
        program the snapshot did not look up counts as not installed."""
        lookups = recorded.host.recorded
        return ProgramLocation(lookups.program(self.program)) if lookups is not None else None


@recorded
@frozen
class ProgramVersion:
    """A program's absolute path and the version it reports (None when absent or silent)."""

    path: str | None
    version: str | None = None
    detail: str = ""


VERSION_TIMEOUT_S = 90.0


@recorded
@frozen
class ProgramVersionProbe(Probe[ProgramVersion]):
    """`<program> --version` (or `args`: `restic version`), found on the user's search path (or
    at an explicit path)."""

    program: str
    path: str | None  # resolved when the probe is declared; None: not installed
    args: tuple[str, ...] = ("--version",)

    @classmethod
    def find(cls, program: str, host: HostContext) -> ProgramVersionProbe:
        """Locate `program` now (reads the machine: for recording snapshots, never planning)."""
        return cls(program, locate(program, host))

    def command(self, host: HostContext) -> Command | None:
        if self.path is None:
            return None
        # A gateway's `--version` loads its whole CLI: clawdbot 2026.1.24-3 took 17.5 s (node 24)
        # and 19.8 s (node 22) at load 13-15 on 2 cores, so a 20 s deadline turned a loaded
        # host's plan into "could not read the host" (docs/host-facts.md §8).
        return Command((self.path, *self.args), timeout_s=VERSION_TIMEOUT_S)

    def read(self, host: HostContext) -> ProgramVersion:
        return ProgramVersion(None, None, f"{self.program}: not installed")

    def parse(self, result: CommandResult) -> ProgramVersion:
        if not result.ok:
            return ProgramVersion(self.path, None, f"{self._call}: {result.summary()}")
        match = _VERSION_TOKEN.search(result.stdout.strip() or result.stderr)
        if not match:
            return ProgramVersion(self.path, None, f"{self._call} printed no version")
        return ProgramVersion(self.path, match.group(0), "")

    @property
    def _call(self) -> str:
        return " ".join((self.program, *self.args))

    def answer_from(self, recorded: RecordedHost) -> ProgramVersion | None:
        # "Not installed" needs no command and reads nothing: the same answer anywhere.
        return self.read(recorded.host) if self.path is None else None

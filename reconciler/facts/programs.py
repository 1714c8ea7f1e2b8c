"""Programs the user's gateways need: where they are and which version they report."""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass

from reconciler.core.command import Command, CommandResult
from reconciler.core.host import HostContext
from reconciler.core.probe import Probe
from reconciler.facts.codec import RecordedHost, recorded

_VERSION_TOKEN = re.compile(r"v?\d+\.\d+(?:\.\d+)?(?:[-+][\w.]+)?")


def locate(program: str, host: HostContext) -> str | None:
    """Absolute path of `program` as the spec's user would find it (their npm prefix first)."""
    if host.recorded is not None:  # a snapshot's host: never look at the machine we run on
        return host.recorded.program(program)
    if "/" in program:
        return program if shutil.which(program) else None
    return shutil.which(program, path=":".join(host.user_search_path()))


@recorded
@dataclass(frozen=True)
class ProgramVersion:
    """A program's absolute path and the version it reports (None when absent or silent)."""

    path: str | None
    version: str | None = None
    detail: str = ""


@recorded
@dataclass(frozen=True)
class ProgramVersionProbe(Probe[ProgramVersion]):
    """`<program> --version`, found on the user's search path (or at an explicit path)."""

    program: str
    path: str | None  # resolved when the probe is declared; None: not installed

    @classmethod
    def find(cls, program: str, host: HostContext) -> ProgramVersionProbe:
        return cls(program, locate(program, host))

    def command(self, host: HostContext) -> Command | None:
        if self.path is None:
            return None
        return Command((self.path, "--version"), timeout_s=20)

    def read(self, host: HostContext) -> ProgramVersion:
        return ProgramVersion(None, None, f"{self.program}: not installed")

    def parse(self, result: CommandResult) -> ProgramVersion:
        if not result.ok:
            return ProgramVersion(self.path, None, f"{self.program} --version: {result.summary()}")
        match = _VERSION_TOKEN.search(result.stdout.strip() or result.stderr)
        if not match:
            return ProgramVersion(self.path, None, f"{self.program} --version printed no version")
        return ProgramVersion(self.path, match.group(0), "")

    def answer_from(self, recorded: RecordedHost) -> ProgramVersion | None:
        # "Not installed" needs no command and reads nothing: the same answer anywhere.
        return self.read(recorded.host) if self.path is None else None

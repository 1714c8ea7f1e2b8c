"""The user's systemd manager: the state of many units, read with ONE `systemctl --user show`.

docs/host-facts.md §3: `systemctl --user show A B -p ...` prints one block of `Key=value` lines per unit,
blocks separated by a blank line, in the order the units were asked. Every kind that cares about
a unit (gateway services, legacy units, later the reconcile timer) declares a `UnitStatusProbe`;
the probe session merges them all into a single call, whatever the number of profiles.

Timestamps are asked for with `--timestamp=us+utc` (systemd >= 247): the default format is in the
local time zone with one-second resolution, too coarse to tell whether a file written a few
hundred milliseconds before a restart is older or newer than the running service.
"""

from __future__ import annotations

import re
import shlex
from datetime import UTC, datetime
from typing import Any, Literal

from reconciler.core.command import Command, CommandResult
from reconciler.core.host import HostContext
from reconciler.core.probe import BatchedProbe, Probe, ProbeFailed
from reconciler.facts.codec import RecordedHost, recorded
from reconciler.frozen import frozen
from reconciler.gateway.paths import unit_dir

PROPERTIES = (
    "Id",
    "LoadState",
    "ActiveState",
    "SubState",
    "UnitFileState",
    "FragmentPath",
    "NeedDaemonReload",
    "ActiveEnterTimestamp",
    "MainPID",
)

# What systemctl prints when the user's manager cannot be reached (no linger, no session).
_BUS_ERRORS = (
    "Failed to connect to bus",
    "Failed to connect to user scope bus",
    "$DBUS_SESSION_BUS_ADDRESS and $XDG_RUNTIME_DIR not defined",
)

ManagerReach = Literal["ok", "unreachable"]


@recorded
@frozen
class UnitStatus:
    """One unit as the user's manager sees it (or why the manager could not be asked)."""

    unit: str
    manager: ManagerReach = "ok"
    detail: str = ""  # why the manager is unreachable
    load_state: str = ""  # loaded | not-found | bad-setting | error | masked
    active_state: str = ""  # active | reloading | inactive | failed | activating | deactivating
    sub_state: str = ""
    unit_file_state: str = ""  # enabled | disabled | static | masked | "" (no file) ...
    fragment_path: str = ""
    need_daemon_reload: bool = False
    active_enter_s: float | None = None  # when it last became active (epoch seconds, UTC)
    main_pid: int | None = None

    @property
    def reachable(self) -> bool:
        return self.manager == "ok"

    @property
    def loaded(self) -> bool:
        return self.load_state == "loaded"

    @property
    def enabled(self) -> bool:
        return self.unit_file_state == "enabled"

    @property
    def running(self) -> bool:
        """Up or about to be: a reload keeps the process, `activating` is a start in progress."""
        return self.active_state in ("active", "reloading")


def unit_environment(text: str) -> dict[str, str]:
    """Pure: the variables a unit file's `Environment=` lines assign (systemd's quoting, the
    last assignment wins, as in systemd); a line that does not parse is skipped."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        if not line.startswith("Environment="):
            continue
        try:
            words = shlex.split(line[len("Environment=") :])
        except ValueError:
            continue
        for word in words:
            name, sep, value = word.partition("=")
            if sep:
                found[name] = value
    return found


def unreachable(unit: str, detail: str) -> UnitStatus:
    return UnitStatus(unit, manager="unreachable", detail=detail)


_TIMESTAMP = re.compile(
    r"^(?:[A-Z][a-z]{2} )?(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2})(?:\.(\d{1,6}))? UTC$"
)


def parse_timestamp(text: str) -> float | None:
    """`Mon 2026-01-26 10:00:00.123456 UTC` (or `@1769421600`) -> epoch seconds; empty -> None.

    Only UTC is accepted: a local zone abbreviation (`CET`) is ambiguous, and the probe always
    asks for UTC. Anything else raises ValueError (a format we do not model).
    """
    text = text.strip()
    if text in ("", "n/a", "0"):
        return None
    if text.startswith("@"):
        return float(text[1:])
    match = _TIMESTAMP.match(text)
    if not match:
        raise ValueError(f"unrecognised systemd timestamp {text!r}")
    moment = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    fraction = int((match.group(2) or "0").ljust(6, "0")) / 1_000_000
    return moment.timestamp() + fraction


def parse_show_blocks(stdout: str) -> list[dict[str, str]]:
    """`systemctl show` output -> one {property: value} per unit, in output order."""
    blocks: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for line in stdout.splitlines():
        if not line.strip():
            if current:
                blocks.append(current)
                current = {}
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise ValueError(f"not a Key=value line: {line!r}")
        current[key] = value
    if current:
        blocks.append(current)
    return blocks


def unit_status(unit: str, block: dict[str, str]) -> UnitStatus:
    """One parsed block -> a UnitStatus (pure)."""
    pid = int(block.get("MainPID") or 0)
    return UnitStatus(
        unit=unit,
        load_state=block.get("LoadState", ""),
        active_state=block.get("ActiveState", ""),
        sub_state=block.get("SubState", ""),
        unit_file_state=block.get("UnitFileState", ""),
        fragment_path=block.get("FragmentPath", ""),
        need_daemon_reload=block.get("NeedDaemonReload", "no") == "yes",
        active_enter_s=parse_timestamp(block.get("ActiveEnterTimestamp", "")),
        main_pid=pid or None,
    )


def manager_problem(result: CommandResult) -> str | None:
    """Why the user's manager could not answer, or None when it did."""
    if result.exit_code is None:
        return f"systemctl --user: {result.error}"
    text = result.stderr + result.stdout
    if any(marker in text for marker in _BUS_ERRORS):
        return (
            "the user's systemd manager is not running (no linger and no login session: "
            "`Failed to connect to bus`)"
        )
    return None


def parse_unit_statuses(units: list[str], result: CommandResult) -> list[UnitStatus]:
    """The result of one `systemctl --user show U1 U2 ...` -> a status per unit, in order."""
    problem = manager_problem(result)
    if problem:
        return [unreachable(u, problem) for u in units]
    if result.exit_code != 0:
        raise ProbeFailed(f"systemctl --user show: {result.summary()}")
    blocks = parse_show_blocks(result.stdout)
    if len(blocks) != len(units):
        raise ProbeFailed(
            f"systemctl --user show printed {len(blocks)} blocks for {len(units)} units"
        )
    return [unit_status(unit, block) for unit, block in zip(units, blocks, strict=True)]


@recorded
@frozen
class UnitStatusProbe(BatchedProbe[UnitStatus]):
    """The state of one user unit; all instances are read in one `systemctl --user show`."""

    unit: str

    @classmethod
    def batch_command(cls, probes: list[Any], host: HostContext) -> Command:
        units = sorted({p.unit for p in probes})  # sorted: the same command for the same units
        return Command(
            (
                "systemctl",
                "--user",
                "show",
                "--timestamp=us+utc",
                *units,
                "-p",
                ",".join(PROPERTIES),
            ),
            scope="user",
            timeout_s=15,
        )

    @classmethod
    def batch_parse(cls, probes: list[Any], result: CommandResult) -> dict[Any, UnitStatus]:
        units = sorted({p.unit for p in probes})
        statuses = dict(zip(units, parse_unit_statuses(units, result), strict=True))
        return {p: statuses[p.unit] for p in probes}

    def answer_from(self, recorded: RecordedHost) -> UnitStatus | None:
        """An unreachable manager is unreachable for every unit; a unit whose file the
        snapshot shows missing is what `systemctl --user show` says of it: not-found."""
        statuses = recorded.facts_of(UnitStatus)
        down = next((s for s in statuses if not s.reachable), None)
        if down is not None:
            return unreachable(self.unit, down.detail)
        if statuses and recorded.known_missing(unit_dir(recorded.host) / self.unit):
            return UnitStatus(
                self.unit, load_state="not-found", active_state="inactive", sub_state="dead"
            )
        return None


@recorded
@frozen
class LingerProbe(Probe[bool]):
    """Whether the linger flag file exists for `user` (in-process read; needs no logind)."""

    user: str

    def read(self, host: HostContext) -> bool:
        return (host.linger_dir / self.user).exists()


@recorded
@frozen
class SystemdState:
    """Whether systemd runs this host: `/run/systemd/system` exists (sd_booted(3)'s test), and
    what PID 1 is (its `comm`), to say so when it is not."""

    running: bool
    pid1: str = ""

    def blocker(self) -> str | None:
        """Why no unit, linger or timer step can run here, or None when systemd runs."""
        if self.running:
            return None
        return f"systemd is not running on this host (PID 1 is {self.pid1 or 'unknown'})"


@recorded
@frozen
class SystemdProbe(Probe[SystemdState]):
    """Is systemd the init system here (in-process: one stat and one small /proc read)."""

    def read(self, host: HostContext) -> SystemdState:
        try:
            pid1 = (host.proc_root / "1" / "comm").read_text(encoding="utf-8").strip()
        except OSError:
            pid1 = ""
        return SystemdState(host.systemd_dir.is_dir(), pid1)

    def answer_from(self, recorded: RecordedHost) -> SystemdState | None:
        # A snapshot recorded before this fact existed: its host answered systemctl.
        return SystemdState(True, "systemd") if recorded.facts_of(UnitStatus) else None


RESTART_PROPERTIES = ("Id", "NRestarts", "Result", "ExecMainCode", "ExecMainStatus")


@recorded
@frozen
class UnitRestarts:
    """How a service has been ending: automatic restarts and its main process's last exit."""

    unit: str
    manager: ManagerReach = "ok"
    detail: str = ""
    n_restarts: int = 0  # automatic restarts since the last start by hand
    result: str = ""  # success | exit-code | signal | timeout | core-dump | ...
    exit_code: int | None = None  # ExecMainStatus when ExecMainCode is 1 (CLD_EXITED)
    signal: int | None = None  # ExecMainStatus when the process was killed (CLD_KILLED/DUMPED)

    def last_exit(self) -> str:
        """`exit status 1`, `signal 9`, or "" when it never ended badly."""
        if self.signal is not None:
            return f"killed by signal {self.signal}"
        if self.exit_code:
            return f"exit status {self.exit_code}"
        return ""


def unit_restarts(unit: str, block: dict[str, str]) -> UnitRestarts:
    """One `systemctl show` block of RESTART_PROPERTIES -> UnitRestarts (pure).

    ExecMainCode is the siginfo code of the main process's end: 1 exited (ExecMainStatus is
    its exit status), 2 killed and 3 dumped (ExecMainStatus is the signal), 0 never ended.
    """
    code = int(block.get("ExecMainCode") or 0)
    status = int(block.get("ExecMainStatus") or 0)
    return UnitRestarts(
        unit,
        n_restarts=int(block.get("NRestarts") or 0),
        result=block.get("Result", ""),
        exit_code=status if code == 1 else None,
        signal=status if code in (2, 3) else None,
    )


@recorded
@frozen
class UnitRestartsProbe(BatchedProbe[UnitRestarts]):
    """Restart counters of one user unit; all instances are read in one `systemctl --user show`."""

    unit: str

    @classmethod
    def batch_command(cls, probes: list[Any], host: HostContext) -> Command:
        units = sorted({p.unit for p in probes})
        return Command(
            ("systemctl", "--user", "show", *units, "-p", ",".join(RESTART_PROPERTIES)),
            scope="user",
            timeout_s=15,
        )

    @classmethod
    def batch_parse(cls, probes: list[Any], result: CommandResult) -> dict[Any, UnitRestarts]:
        units = sorted({p.unit for p in probes})
        problem = manager_problem(result)
        if problem:
            return {p: UnitRestarts(p.unit, "unreachable", problem) for p in probes}
        if result.exit_code != 0:
            raise ProbeFailed(f"systemctl --user show: {result.summary()}")
        blocks = parse_show_blocks(result.stdout)
        if len(blocks) != len(units):
            raise ProbeFailed(
                f"systemctl --user show printed {len(blocks)} blocks for {len(units)} units"
            )
        found = {u: unit_restarts(u, b) for u, b in zip(units, blocks, strict=True)}
        return {p: found[p.unit] for p in probes}


@recorded
@frozen
class JournalTail:
    """The last lines a unit wrote to the user's journal (or why they could not be read)."""

    lines: tuple[str, ...] = ()
    detail: str = ""


@recorded
@frozen
class JournalTailProbe(Probe[JournalTail]):
    """`journalctl --user -u UNIT -n N -o cat`: the last lines of one unit, as its user."""

    unit: str
    lines: int = 10

    def command(self, host: HostContext) -> Command:
        return Command(
            (
                "journalctl",
                "--user",
                "-u",
                self.unit,
                "-n",
                str(self.lines),
                "--no-pager",
                "-o",
                "cat",
            ),
            scope="user",
            timeout_s=15,
        )

    def parse(self, result: CommandResult) -> JournalTail:
        if not result.ok:
            return JournalTail(detail=f"journalctl: {result.summary()}")
        lines = tuple(line for line in result.stdout.splitlines() if line.strip())
        if lines == ("-- No entries --",):
            lines = ()
        return JournalTail(lines[-self.lines :])

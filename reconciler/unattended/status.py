"""Status: what the unattended runs have been doing, from records, suspension and the timer.

Pure: the run records, the suspension, and two timer facts (the shared `UnitStatus` of
`reconciler.timer`, and `TimerSchedule` read by the tiny probe below) go in; a `Status` comes
out, rendered as text or as a JSON document by `render_status` / `status_document`.

Why a probe of its own: the shared unit probe does not carry the timer's next elapse. A timer
with only monotonic triggers (OnBootSec=, OnUnitActiveSec=, ours) has no realtime next elapse
(`NextElapseUSecRealtime` is empty); its next elapse is `NextElapseUSecMonotonic`, a time since
boot that systemctl prints as a timespan (`2h 3min 4.5s`), converted here with the clocks the
caller read at the same moment.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from reconciler.core.command import Command, CommandResult
from reconciler.core.host import HostContext
from reconciler.core.probe import Probe, ProbeFailed
from reconciler.facts.codec import recorded
from reconciler.facts.systemd import (
    UnitStatus,
    manager_problem,
    parse_show_blocks,
    parse_timestamp,
)
from reconciler.frozen import frozen
from reconciler.spec.duration import parse_timespan
from reconciler.unattended.runs import RunRecord
from reconciler.unattended.suspend import Suspension

TIMER_UNIT = "reconciler.timer"

SCHEDULE_PROPERTIES = ("NextElapseUSecRealtime", "NextElapseUSecMonotonic", "LastTriggerUSec")


@recorded
@frozen
class TimerSchedule:
    """When the timer fires next and fired last (None: not scheduled / never / unknown)."""

    next_realtime_s: float | None = None
    next_monotonic_s: float | None = None  # seconds since boot (CLOCK_MONOTONIC)
    last_trigger_s: float | None = None
    detail: str = ""  # why it could not be read


@recorded
@frozen
class TimerScheduleProbe(Probe[TimerSchedule]):
    """`systemctl --user show reconciler.timer -p NextElapseUSecRealtime,...` (read-only)."""

    unit: str = TIMER_UNIT

    def command(self, host: HostContext) -> Command | None:
        return Command(
            (
                "systemctl",
                "--user",
                "show",
                "--timestamp=us+utc",
                self.unit,
                "-p",
                ",".join(SCHEDULE_PROPERTIES),
            ),
            scope="user",
            timeout_s=15,
        )

    def parse(self, result: CommandResult) -> TimerSchedule:
        problem = manager_problem(result)
        if problem:
            return TimerSchedule(detail=problem)
        if not result.ok:
            raise ProbeFailed(f"systemctl --user show {self.unit}: {result.summary()}")
        blocks = parse_show_blocks(result.stdout)
        block = blocks[0] if blocks else {}
        return TimerSchedule(
            next_realtime_s=parse_timestamp(block.get("NextElapseUSecRealtime", "")),
            next_monotonic_s=parse_timespan(block.get("NextElapseUSecMonotonic", "")),
            last_trigger_s=parse_timestamp(block.get("LastTriggerUSec", "")),
        )


@frozen
class TimerView:
    """The timer as status shows it."""

    known: bool  # False: the user's manager could not be asked (detail says why)
    installed: bool = False
    enabled: bool = False
    active: bool = False
    next_elapse: str | None = None  # ISO 8601 UTC
    last_trigger: str | None = None
    detail: str = ""


@frozen
class Status:
    last_run: RunRecord | None
    last_success: RunRecord | None
    drift: tuple[str, ...]  # what the last run found different from the spec
    suspended: Suspension | None
    timer: TimerView
    last_applied_revision: str | None = None
    last_attempted_revision: str | None = None
    runs: int = 0  # records available (rotation bounds it)


def build_status(
    records: list[RunRecord],
    suspension: Suspension | None,
    unit: UnitStatus | None,
    schedule: TimerSchedule | None,
    *,
    now_s: float,
    monotonic_s: float,
) -> Status:
    """Pure: records (oldest first), suspension and timer facts -> Status.

    `now_s`/`monotonic_s` are the realtime and CLOCK_MONOTONIC clocks read together, to turn a
    monotonic next elapse into a wall-clock time.
    """
    last = records[-1] if records else None
    success = next((r for r in reversed(records) if r.succeeded), None)
    # The last run that actually looked at the host: suspended/locked runs found nothing.
    looked = next(
        (r for r in reversed(records) if r.result not in ("suspended", "locked", "invalid-spec")),
        None,
    )
    attempted = next(
        (r.last_attempted_revision for r in reversed(records) if r.last_attempted_revision), None
    )
    applied = next(
        (r.last_applied_revision for r in reversed(records) if r.last_applied_revision), None
    )
    return Status(
        last_run=last,
        last_success=success,
        drift=looked.drift if looked else (),
        suspended=suspension,
        timer=timer_view(unit, schedule, now_s=now_s, monotonic_s=monotonic_s),
        last_applied_revision=applied,
        last_attempted_revision=attempted,
        runs=len(records),
    )


def timer_view(
    unit: UnitStatus | None,
    schedule: TimerSchedule | None,
    *,
    now_s: float,
    monotonic_s: float,
) -> TimerView:
    if unit is None:
        return TimerView(known=False, detail="not probed")
    if not unit.reachable:
        return TimerView(known=False, detail=unit.detail)
    installed = unit.loaded or bool(unit.unit_file_state)
    next_s: float | None = None
    last_s: float | None = None
    if schedule is not None:
        next_s = schedule.next_realtime_s
        if next_s is None and schedule.next_monotonic_s is not None:
            next_s = now_s + (schedule.next_monotonic_s - monotonic_s)
        last_s = schedule.last_trigger_s
    return TimerView(
        known=True,
        installed=installed,
        enabled=unit.enabled,
        active=unit.running,
        next_elapse=_iso(next_s) if unit.running else None,
        last_trigger=_iso(last_s),
    )


def status_document(status: Status) -> dict[str, Any]:
    """The JSON form of `reconciler status --json` (stable keys)."""

    def record(r: RunRecord | None) -> dict[str, Any] | None:
        if r is None:
            return None
        data = asdict(r)
        data.update(data.pop("extra"))
        data["drift"] = list(r.drift)
        return data

    return {
        "last_run": record(status.last_run),
        "last_success": record(status.last_success),
        "drift": list(status.drift),
        "suspended": asdict(status.suspended) if status.suspended else None,
        "timer": asdict(status.timer),
        "last_applied_revision": status.last_applied_revision,
        "last_attempted_revision": status.last_attempted_revision,
        "runs": status.runs,
    }


def render_status(status: Status, *, now_s: float) -> str:
    """The text form: one fact a line, aligned, ending with a newline."""
    rows: list[tuple[str, str]] = []
    rows.append(("Last run", _describe_run(status.last_run, now_s)))
    if status.last_run is not None and status.last_run.reason:
        rows.append(("  reason", status.last_run.reason))
    if status.last_success is not status.last_run:
        rows.append(("Last success", _describe_run(status.last_success, now_s)))
    rows.append(("Drift found", ", ".join(status.drift) if status.drift else "none"))
    if status.last_applied_revision or status.last_attempted_revision:
        rows.append(("Applied revision", status.last_applied_revision or "none yet"))
        rows.append(("Attempted revision", status.last_attempted_revision or "none yet"))
    rows.append(("Suspended", f"yes, {status.suspended.describe()}" if status.suspended else "no"))
    rows.append(("Timer", _describe_timer(status.timer, now_s)))
    width = max(len(label) for label, _ in rows) + 1
    return "".join(f"{(label + ':').ljust(width + 1)}{value}\n" for label, value in rows)


def _describe_run(record: RunRecord | None, now_s: float) -> str:
    if record is None:
        return "never"
    counts = (
        f"{record.applied} applied, {record.failed} failed, {record.blocked} blocked, "
        f"{record.skipped} skipped"
    )
    when = f"{record.end} ({_ago(record.end, now_s)})"
    revision = f", {record.last_attempted_revision}" if record.last_attempted_revision else ""
    return f"{when}: {record.result} ({counts}){revision}"


def _describe_timer(timer: TimerView, now_s: float) -> str:
    if not timer.known:
        return f"unknown ({timer.detail})"
    if not timer.installed:
        return "not installed"
    state = ", ".join(
        [
            "installed",
            "enabled" if timer.enabled else "not enabled",
            "active" if timer.active else "not active",
        ]
    )
    if timer.next_elapse:
        state += f"; next run {timer.next_elapse} ({_ahead(timer.next_elapse, now_s)})"
    if timer.last_trigger:
        state += f"; last fired {timer.last_trigger}"
    return state


def _iso(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds")


def _ago(iso: str, now_s: float) -> str:
    try:
        delta = now_s - datetime.fromisoformat(iso).timestamp()
    except ValueError:
        return "?"
    return f"{_span(delta)} ago" if delta >= 0 else f"in {_span(-delta)}"


def _ahead(iso: str, now_s: float) -> str:
    try:
        delta = datetime.fromisoformat(iso).timestamp() - now_s
    except ValueError:
        return "?"
    return f"in {_span(delta)}" if delta >= 0 else f"{_span(-delta)} overdue"


def _span(seconds: float) -> str:
    seconds = int(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"

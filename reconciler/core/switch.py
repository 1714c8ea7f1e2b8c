"""What a health-gated version switch reports (pure data; the runner fills it in).

The switch itself is `core.action.GatedSwitch`; reconciler/shell/switch.py carries it out.
"""

from __future__ import annotations

from typing import Literal

from reconciler.frozen import frozen

SwitchOutcome = Literal["switched", "rolled-back", "rollback-failed"]
WarmUpOutcome = Literal["ready", "failed", "timed-out"]

# What every gateway unit declares (TimeoutStartSec=, TimeoutStopSec=), instead of systemd's
# default 90 s: a gateway in its first start (30-60 s compiling) may not stop on SIGTERM, and
# a `systemctl --user restart` that waits 90 s outlived the switch's own deadline (tried here:
# an apply after a SIGKILLed switch rolled back a healthy version for it, docs/host-facts.md §8).
UNIT_START_TIMEOUT_S = 30
UNIT_STOP_TIMEOUT_S = 30
# How long a restart of a gateway unit may take: systemd SIGKILLs the old process at its stop
# timeout, so the restart returns before this deadline whatever the gateway does.
RESTART_DEADLINE_S = float(UNIT_STOP_TIMEOUT_S + 20)


@frozen
class WarmUpReport:
    """How a switch's warm-up ended (core.action.WarmUp): its gateway answered `gateway health`
    ok (`ready`), ended or could not start (`failed`), or was stopped at its deadline
    (`timed-out`); `seconds` from its start to its stop; `detail` says why it failed. A
    warm-up never blocks the switch: it only costs time while the old version serves."""

    outcome: WarmUpOutcome
    seconds: float
    detail: str = ""

    def text(self) -> str:
        if self.outcome == "ready":
            return f"warmed up in {self.seconds:.1f} s"
        why = f": {self.detail}" if self.detail else ""
        if self.outcome == "timed-out":
            return f"warm-up stopped after {self.seconds:.1f} s{why}; started cold"
        return f"warm-up failed after {self.seconds:.1f} s{why}; started cold"

    def record(self) -> dict[str, object]:
        return {
            "outcome": self.outcome,
            "seconds": round(self.seconds, 3),
            **({"detail": self.detail} if self.detail else {}),
        }


@frozen
class SwitchReport:
    """How one profile's switch ended.

    `downtime_s`: from the restart (the old gateway stops) to the first healthy answer of
    whichever version serves afterwards; None when nothing answered. `reason` says why the new
    version was refused, `journal` holds the unit's last journal lines at that moment, and
    `rollback_error` why the rollback did not bring the old version back either.
    """

    profile: str
    from_version: str | None
    to_version: str
    outcome: SwitchOutcome
    downtime_s: float | None
    reason: str = ""
    journal: tuple[str, ...] = ()
    rollback_error: str = ""
    failed_at: str = ""  # ISO 8601 UTC, when the new version was found unhealthy
    snapshot_s: float | None = None  # the state directory's copy (gateway stopped), seconds
    snapshot_bytes: int | None = None  # and the disk it took
    warm_up: WarmUpReport | None = None  # the new version started once before, if it was

    @property
    def ok(self) -> bool:
        return self.outcome == "switched"

    def message(self) -> str:
        """One line (plus journal lines) for the apply output and the run record.

        A failed switch's text is what the progress line puts in `FAILED (...)`, so it does not
        say FAILED itself.
        """
        old = self.from_version or "the previous unit"
        down = f"{self.downtime_s:.1f} s" if self.downtime_s is not None else "not answering"
        warm = f"; {self.warm_up.text()}" if self.warm_up is not None else ""
        if self.outcome == "switched":
            left = f"; {self.reason}" if self.reason else ""
            return (
                f"{self.profile}: {old} -> {self.to_version}, healthy (downtime {down}{warm}){left}"
            )
        tail = ""
        if self.journal:
            tail = ", last journal lines:\n" + "\n".join(f"    {line}" for line in self.journal)
        if self.outcome == "rolled-back":
            return (
                f"rolled back to {old}: {self.reason}{tail} "
                f"[{self.profile}: {self.to_version} refused, downtime {down}{warm}]"
            )
        return (
            f"rollback to {old} failed too: {self.rollback_error}; "
            f"{self.to_version} was refused: {self.reason}{tail} "
            f"[{self.profile}: no healthy gateway{warm}]"
        )

    def record(self) -> dict[str, object]:
        """What the run record keeps of it (JSON)."""
        return {
            "profile": self.profile,
            "from": self.from_version,
            "to": self.to_version,
            "outcome": self.outcome,
            "downtime_s": None if self.downtime_s is None else round(self.downtime_s, 3),
            **({"reason": self.reason} if self.reason else {}),
            **(
                {"snapshot_s": round(self.snapshot_s, 3), "snapshot_bytes": self.snapshot_bytes}
                if self.snapshot_s is not None
                else {}
            ),
            **({"rollback_error": self.rollback_error} if self.rollback_error else {}),
            **({"warm_up": self.warm_up.record()} if self.warm_up is not None else {}),
        }

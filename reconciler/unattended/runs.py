"""Run records: one JSON line per apply in `<state dir>/runs.jsonl`, rotated to a bounded size.

Nobody watches the timer, so every run leaves an account of itself: when, what it found, what
it did, from which spec (path, sha256, git commit) and how it ended. `status` reads them back.

The file is one of the record store's (system/records.py: one locked write per record, rotation,
bounded reads; a line torn by a crash, or nested too deep, is skipped when reading).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, field, fields, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, get_args

from reconciler.core.blocked import blocked_summary, group_blocked, steps
from reconciler.core.plan import Plan
from reconciler.core.secrets import mask_secrets
from reconciler.frozen import frozen
from reconciler.shell.apply import ApplyResult, Convergence
from reconciler.system.records import KEEP, MAX_BYTES, RecordFile, parse_line
from reconciler.unattended import ensure_state_dir

RUNS_NAME = "runs.jsonl"

Result = Literal["converged", "failed", "not-converged", "suspended", "invalid-spec", "locked"]
ApplyResultName = Literal["converged", "failed", "not-converged"]
RESULTS: tuple[str, ...] = get_args(Result)

# The one result that says the host matches the spec. A run that left steps blocked (root-only
# steps under a user timer, a missing program) is "not-converged": the host still differs.
SUCCESS: frozenset[str] = frozenset({"converged"})


@frozen
class ApplyOutcome:
    """What the apply step reports back to the unattended wrapper (see outcome_of)."""

    result: ApplyResultName
    applied: int = 0
    failed: int = 0
    blocked: int = 0
    skipped: int = 0
    drift: tuple[str, ...] = ()  # addresses where the host differed from the spec
    reason: str = ""  # why it failed or did not converge ("" when converged)
    # Gateway version switches (SwitchReport.record()): versions, outcome, downtime.
    switches: tuple[dict[str, Any], ...] = ()

    @property
    def exit_code(self) -> int:
        """0 converged, 2 not converged (nothing failed: blocked or pending steps), 1 failed."""
        return {"converged": 0, "not-converged": 2}.get(self.result, 1)


def outcome_of(
    before: Plan, result: ApplyResult | Convergence | None, after: Plan | None = None
) -> ApplyOutcome:
    """Summarise a plan, the apply of it and the plan re-probed after it.

    `result`: one `apply_plan` pass (then pass `after`), a `converge` (its `final` plan is the
    after), or None when nothing ran (declined, or nothing runnable). Pure. Blocked actions
    (root-only steps under a user timer, a missing node) are counted, not failures: the rest of
    the host converged, which is what the run promises.
    """
    drift = tuple(a.address for a in before.actions if a.kind != "verify" or a.blocked)
    blocked = len(before.blocked)
    if before.errors:
        return ApplyOutcome("failed", blocked=blocked, drift=drift, reason="; ".join(before.errors))
    if result is None:
        pending = before.runnable
        if pending:  # the caller decided not to run a plan that had work (declined, dry run)
            return ApplyOutcome(
                "not-converged",
                blocked=blocked,
                drift=drift,
                reason=f"{len(pending)} action(s) not applied",
            )
        return _unless_blocked(ApplyOutcome("converged", blocked=blocked, drift=drift), before)
    if isinstance(result, Convergence):
        after = result.final if after is None else after
        outcomes = [o for one in result.passes for o in one.outcomes]
    else:
        outcomes = result.outcomes
    done = ApplyOutcome(
        "converged",
        applied=result.count("applied"),
        failed=result.count("failed"),
        blocked=result.count("blocked"),
        skipped=result.count("skipped"),
        drift=drift,
        switches=tuple(
            op.report.record() for o in outcomes for op in o.operations if op.report is not None
        ),
    )
    if not result.ok:
        failed = [f"{o.action.address}: {o.detail}" for o in outcomes if o.outcome == "failed"]
        if not failed:  # ok is False for skips caused by failures only; name those
            failed = [f"{o.action.address}: {o.detail}" for o in outcomes if o.detail]
        return replace(done, result="failed", reason="; ".join(failed))
    if after is not None and after.errors:
        return replace(done, result="failed", reason="; ".join(after.errors))
    if after is not None and after.runnable:
        still = ", ".join(a.address for a in after.runnable)
        return replace(done, result="not-converged", reason=f"still pending: {still}")
    return _unless_blocked(done, after if after is not None else before)


def _unless_blocked(outcome: ApplyOutcome, plan: Plan) -> ApplyOutcome:
    """A converged outcome becomes not-converged while `plan` still has blocked steps."""
    blocked = plan.blocked
    if not blocked:
        return outcome
    why = blocked_summary(group_blocked(blocked))
    return replace(
        outcome,
        result="not-converged",
        blocked=len(blocked),
        reason=f"{steps(len(blocked))} blocked: {why}",
    )


@frozen
class RunRecord:
    """One apply, as written to runs.jsonl (field names are the JSON keys)."""

    start: str  # ISO 8601 UTC
    end: str
    result: Result
    applied: int = 0
    failed: int = 0
    blocked: int = 0
    skipped: int = 0
    drift: tuple[str, ...] = ()
    reason: str = ""
    interactive: bool = False
    pid: int = 0
    user: str = ""
    spec_path: str | None = None
    spec_sha256: str | None = None
    # The spec's own work tree (plain runs): HEAD and whether tracked files had edits.
    git_commit: str | None = None
    git_dirty: bool | None = None
    # Git-source runs (reconcile.source): Flux's names. `last_applied_revision` carries over
    # from earlier runs until a run converges on a newer one.
    source: str | None = None  # "<clone>@<ref>"
    last_attempted_revision: str | None = None
    last_applied_revision: str | None = None
    # Gateway version switches of this run: profile, from, to, outcome, downtime_s, reason.
    switches: tuple[dict[str, Any], ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)  # fields a newer version wrote

    @property
    def succeeded(self) -> bool:
        return self.result in SUCCESS

    def to_json(self) -> str:
        data = asdict(self)
        data.update(data.pop("extra"))
        data["drift"] = list(self.drift)
        if self.switches:
            data["switches"] = list(self.switches)
        else:
            del data["switches"]  # records without switches keep their old shape
        return json.dumps(data, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunRecord:
        """A record from a parsed line; unknown keys are kept in `extra` (newer writers).

        Raises ValueError for an unknown result (a newer writer: skipped by readers) and
        RecordFieldInvalid for a known field of the wrong type (a damaged record).
        """
        known = {f.name for f in fields(cls)} - {"extra"}
        values = {k: v for k, v in data.items() if k in known}
        if values.get("result") not in RESULTS:
            raise ValueError(f"unknown result {values.get('result')!r}")
        for name, value in values.items():
            _check_field(name, value)
        values["drift"] = tuple(values.get("drift") or ())
        values["switches"] = tuple(values.get("switches") or ())
        if values["result"] == "converged" and values.get("blocked"):
            # Written before blocked steps meant "not converged": read with today's meaning.
            values["result"] = "not-converged"
        return cls(**values, extra={k: v for k, v in data.items() if k not in known})


class RecordFieldInvalid(Exception):
    """A known field of a run record holds a value of the wrong type."""


_TEXT = ("start", "end", "reason", "user")
_COUNTS = ("applied", "failed", "blocked", "skipped", "pid")
_OPTIONAL_TEXT = (
    "spec_path",
    "spec_sha256",
    "git_commit",
    "source",
    "last_attempted_revision",
    "last_applied_revision",
)


def _check_field(name: str, value: Any) -> None:
    if name in _TEXT:
        ok, wanted = isinstance(value, str), "a string"
    elif name in _COUNTS:
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
        wanted = "a whole number of at least 0"
    elif name in _OPTIONAL_TEXT:
        ok, wanted = value is None or isinstance(value, str), "a string or null"
    elif name == "interactive":
        ok, wanted = isinstance(value, bool), "true or false"
    elif name == "git_dirty":
        ok, wanted = value is None or isinstance(value, bool), "true, false or null"
    elif name == "drift":
        ok = value is None or (isinstance(value, list) and all(isinstance(d, str) for d in value))
        wanted = "a list of step addresses (strings)"
    elif name == "switches":
        ok = value is None or (isinstance(value, list) and all(isinstance(d, dict) for d in value))
        wanted = "a list of switch records (objects)"
    else:
        return
    if not ok:
        raise RecordFieldInvalid(f"field {name!r} must be {wanted}, not {json.dumps(value)}")
    if name in ("start", "end"):
        try:
            datetime.fromisoformat(value)
        except ValueError:
            raise RecordFieldInvalid(
                f"field {name!r} must be an ISO 8601 time, not {json.dumps(value)}"
            ) from None


class RunRecordsCorrupt(Exception):
    """A run record that parses as JSON but is damaged: names the file, the line and the fix."""

    def __init__(self, path: Path, line: int, problem: str) -> None:
        super().__init__(
            f"{path}, line {line}: {problem}. The run record is damaged: fix or delete that "
            "line (the other records are kept)"
        )
        self.path = path
        self.line = line


def carried_revision(
    history: Sequence[RunRecord], attempted: str | None, result: Result
) -> str | None:
    """`last_applied_revision` for a new run: its own revision when it converged, else the
    last one a previous run applied (pure)."""
    if attempted is not None and result in SUCCESS:
        return attempted
    for record in reversed(history):
        if record.last_applied_revision:
            return record.last_applied_revision
    return None


def append_record(
    directory: Path, record: RunRecord, *, max_bytes: int = MAX_BYTES, keep: int = KEEP
) -> Path:
    """Append `record` as one line to runs.jsonl (system/records.py), rotating first when it
    would grow too big."""
    ensure_state_dir(directory)
    line = mask_secrets(record.to_json())  # reasons quote errors
    return Path(RecordFile(directory, RUNS_NAME, max_bytes, keep).append(line))


def read_records(directory: Path, *, keep: int = KEEP) -> list[RunRecord]:
    """Every readable record, oldest first (rotated files included); torn lines skipped."""
    return parse_records(RecordFile(directory, RUNS_NAME, keep=keep).read())


def parse_records(files: Iterable[tuple[str, list[str]]]) -> list[RunRecord]:
    """The records of `RecordFile.read()`'s (path, lines), oldest first (pure)."""
    records: list[RunRecord] = []
    for path, lines in files:
        records.extend(_parse_lines(Path(path), lines))
    return records


def _parse_lines(path: Path, lines: Iterable[str]) -> Iterable[RunRecord]:
    """Records, skipping lines torn by a crash, written by something newer or nested too deep;
    raises RunRecordsCorrupt for a record whose known fields have the wrong types."""
    for number, line in enumerate(lines, start=1):
        data = parse_line(line, str(path))
        if data is None:
            continue
        try:
            yield RunRecord.from_dict(data)
        except RecordFieldInvalid as exc:
            raise RunRecordsCorrupt(path, number, str(exc)) from None
        except (ValueError, TypeError):
            continue  # written by something newer

"""Run records: written as JSON lines, read back, rotated; outcomes summarised from plans."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reconciler.core.action import Action, RunCommand
from reconciler.core.command import Command
from reconciler.core.plan import Plan
from reconciler.shell.apply import ActionOutcome, ApplyResult
from reconciler.unattended.runs import (
    RUNS_NAME,
    ApplyOutcome,
    RunRecord,
    RunRecordsCorrupt,
    append_record,
    carried_revision,
    outcome_of,
    read_records,
)


def record(n: int = 0, result: str = "converged", **kw: object) -> RunRecord:
    return RunRecord(
        start=f"2026-01-26T10:00:{n:02d}+00:00",
        end="2026-01-26T10:01:00+00:00",
        result=result,
        **kw,
    )  # type: ignore[arg-type]


def test_records_are_json_lines_read_back_in_order(tmp_path: Path) -> None:
    first = record(
        1,
        applied=2,
        drift=("linger", "profile[ops].service"),
        spec_path="/s.yaml",
        spec_sha256="ab" * 32,
    )
    second = record(
        2, "failed", reason="profile[ops].service: exit 1", git_commit="c0ffee", git_dirty=True
    )
    append_record(tmp_path, first)
    append_record(tmp_path, second)
    lines = (tmp_path / RUNS_NAME).read_text().splitlines()
    assert len(lines) == 2
    data = json.loads(lines[0])
    assert data["result"] == "converged" and data["drift"] == ["linger", "profile[ops].service"]
    assert {"start", "end", "applied", "failed", "blocked", "skipped", "spec_path", "spec_sha256",
            "git_commit", "git_dirty", "last_applied_revision", "last_attempted_revision"} <= set(data)  # fmt: skip
    assert read_records(tmp_path) == [first, second]
    assert (tmp_path / RUNS_NAME).stat().st_mode & 0o777 == 0o600


def test_rotation_keeps_the_size_bounded(tmp_path: Path) -> None:
    one = len(record(0).to_json()) + 1
    for n in range(40):
        append_record(tmp_path, record(n), max_bytes=one * 5, keep=2)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == [RUNS_NAME, f"{RUNS_NAME}.1", f"{RUNS_NAME}.2"]
    for name in files:
        assert (tmp_path / name).stat().st_size <= one * 5
    kept = read_records(tmp_path, keep=2)
    assert [r.start for r in kept] == [
        record(n).start for n in range(25, 40)
    ]  # newest 15, in order


def test_torn_and_foreign_lines_are_skipped(tmp_path: Path) -> None:
    append_record(tmp_path, record(1))
    with (tmp_path / RUNS_NAME).open("a") as f:
        f.write('{"start": "x", "res')  # a crash mid-write
        f.write("\n[1, 2]\n")
        f.write('{"start": "a", "end": "b", "result": "exploded"}\n')
    append_record(tmp_path, record(2))
    assert [r.start for r in read_records(tmp_path)] == [record(1).start, record(2).start]


def test_unknown_fields_survive_a_round_trip() -> None:
    data = json.loads(record(1).to_json()) | {"future_field": 7}
    again = RunRecord.from_dict(data)
    assert again.extra == {"future_field": 7}
    assert json.loads(again.to_json())["future_field"] == 7


def test_last_applied_revision_carries_until_a_run_converges() -> None:
    history = [
        record(1, last_applied_revision="main@sha1:aaa", last_attempted_revision="main@sha1:aaa")
    ]
    assert carried_revision(history, "main@sha1:bbb", "invalid-spec") == "main@sha1:aaa"
    assert carried_revision(history, "main@sha1:bbb", "failed") == "main@sha1:aaa"
    assert carried_revision(history, "main@sha1:bbb", "converged") == "main@sha1:bbb"
    assert carried_revision([], None, "failed") is None


# --- outcome_of --------------------------------------------------------------------------------


def _action(address: str, *, kind: str = "create", blocked: str | None = None) -> Action:
    op = RunCommand(Command(("true",), mutating=True))
    return Action(address, kind, "because", (op,), blocked=blocked)  # type: ignore[arg-type]


def _result(*outcomes: tuple[Action, str, str]) -> ApplyResult:
    return ApplyResult([ActionOutcome(a, o, d) for a, o, d in outcomes])  # type: ignore[arg-type]


def test_blocked_root_steps_mean_not_converged() -> None:
    # Issue 12 #3: a host with blocked steps does not match its spec (this used to be
    # "converged", exit 0). Nothing failed, so the exit code is 2, not 1.
    a, b = _action("profile[p].service"), _action("linger", blocked="needs root")
    c = _action("tailscale.operator", blocked="needs root")
    out = outcome_of(
        Plan((a, b, c)),
        _result((a, "applied", ""), (b, "blocked", "needs root"), (c, "blocked", "needs root")),
        Plan((b, c)),
    )
    assert out == ApplyOutcome(
        "not-converged",
        applied=1,
        blocked=2,
        drift=("profile[p].service", "linger", "tailscale.operator"),
        reason="2 steps blocked: needs root (linger, tailscale.operator)",
    )
    assert out.exit_code == 2
    nothing_ran = outcome_of(Plan((b,)), None)
    assert (nothing_ran.result, nothing_ran.exit_code, nothing_ran.blocked) == (
        "not-converged",
        2,
        1,
    )


def test_a_record_from_before_blocked_meant_not_converged_reads_as_not_converged() -> None:
    old = record(result="converged", blocked=3)
    assert RunRecord.from_dict(json.loads(old.to_json())).result == "not-converged"
    assert RunRecord.from_dict(json.loads(record().to_json())).result == "converged"


@pytest.mark.parametrize(
    ("outcome", "after", "expected"),
    [
        ("failed", Plan(()), "failed"),
        ("applied", Plan((_action("x"),)), "not-converged"),
        ("applied", Plan((), errors=("tailscale: could not read",)), "failed"),
    ],
)
def test_outcome_failures(outcome: str, after: Plan, expected: str) -> None:
    a = _action("x")
    out = outcome_of(Plan((a,)), _result((a, outcome, "exit 1: boom")), after)
    code = 2 if expected == "not-converged" else 1  # nothing failed: the host still differs
    assert out.result == expected and out.exit_code == code and out.reason


def test_outcome_without_apply() -> None:
    assert outcome_of(Plan(()), None, None) == ApplyOutcome("converged")
    verify = _action("runtime.node", kind="verify", blocked="node missing")
    blocked = outcome_of(Plan((verify,)), None, None)
    assert (blocked.blocked, blocked.result) == (1, "not-converged")
    assert blocked.reason == "1 step blocked: node missing (runtime.node)"
    assert outcome_of(Plan((_action("x"),)), None, None).result == "not-converged"  # declined
    assert outcome_of(Plan((), errors=("bad",)), None, None).result == "failed"


def test_outcome_of_a_convergence_uses_its_final_plan() -> None:
    from reconciler.shell.apply import Convergence

    a, b = _action("profile[p].unit"), _action("profile[p].service")
    first, second = _result((a, "applied", "")), _result((b, "applied", ""))
    done = outcome_of(Plan((a,)), Convergence([first, second], Plan(())))
    assert (done.result, done.applied, done.drift) == ("converged", 2, ("profile[p].unit",))
    pending = outcome_of(Plan((a,)), Convergence([first], Plan((b,))))
    assert pending.result == "not-converged" and "profile[p].service" in pending.reason
    failed = outcome_of(
        Plan((a, b)),
        Convergence([_result((a, "applied", ""), (b, "failed", "exit 1"))], Plan((b,))),
    )
    assert failed.result == "failed" and failed.reason == "profile[p].service: exit 1"


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("end", 5, "field 'end' must be a string, not 5"),
        ("start", "yesterday", "field 'start' must be an ISO 8601 time"),
        ("applied", "2", "field 'applied' must be a whole number"),
        ("drift", "linger", "field 'drift' must be a list of step addresses"),
        ("interactive", "no", "field 'interactive' must be true or false"),
        ("git_commit", 7, "field 'git_commit' must be a string or null"),
    ],
)
def test_a_mistyped_record_is_an_error_naming_file_line_and_fix(
    tmp_path: Path, field: str, value: object, problem: str
) -> None:
    # Issue 11 #13: `status` used to die with TypeError from fromisoformat.
    append_record(tmp_path, record(1))
    data = json.loads(record(2).to_json())
    data[field] = value
    with (tmp_path / RUNS_NAME).open("a") as f:
        f.write(json.dumps(data) + "\n")
    with pytest.raises(RunRecordsCorrupt) as caught:
        read_records(tmp_path)
    message = str(caught.value)
    assert message.startswith(f"{tmp_path / RUNS_NAME}, line 2: {problem}"), message
    assert "fix or delete that line" in message


def test_torn_and_foreign_lines_are_still_skipped(tmp_path: Path) -> None:
    append_record(tmp_path, record(1))
    with (tmp_path / RUNS_NAME).open("a") as f:
        f.write('{"start": "2026-01-26T1\n[1, 2]\n{"result": "from-the-future"}\n')
    assert [r.start for r in read_records(tmp_path)] == [record(1).start]

"""Suspend / resume, and what a run does while suspended."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.app.unattended import unattended_apply
from reconciler.unattended.runs import read_records
from reconciler.unattended.suspend import SUSPEND_NAME, current, resume, suspend

from .helpers import Recorder, write_spec


def test_suspend_resume_round_trip(tmp_path: Path) -> None:
    assert current(tmp_path) is None
    state = suspend(tmp_path, "migrating the ops profile")
    assert current(tmp_path) == state
    assert state.reason == "migrating the ops profile" and state.by
    assert (tmp_path / SUSPEND_NAME).stat().st_mode & 0o777 == 0o600
    assert resume(tmp_path) == state
    assert current(tmp_path) is None
    assert resume(tmp_path) is None


def test_an_unparsable_suspension_still_suspends(tmp_path: Path) -> None:
    (tmp_path / SUSPEND_NAME).write_text("{not json")
    found = current(tmp_path)
    assert found is not None and "unparsable" in found.reason


def test_suspended_timer_run_exits_0_at_once_and_is_recorded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "state"
    suspend(state, "maintenance")
    do_apply = Recorder()
    code = unattended_apply(
        write_spec(tmp_path), lock_timeout=0, non_interactive=True, log_format="text",
        do_apply=do_apply, state=state,
    )  # fmt: skip
    assert code == 0
    assert do_apply.specs == []  # nothing was loaded, probed or applied
    (run,) = read_records(state)
    assert run.result == "suspended" and "maintenance" in run.reason
    out = capsys.readouterr().out
    assert "suspended" in out and out.rstrip().splitlines()[-1].startswith("run suspended")
    assert not (state / "lock").exists() or (state / "lock").read_text() == ""


def test_interactive_apply_runs_while_suspended_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "state"
    suspend(state)
    do_apply = Recorder()
    code = unattended_apply(
        write_spec(tmp_path), lock_timeout=0, non_interactive=False, log_format="text",
        do_apply=do_apply, state=state,
    )  # fmt: skip
    assert code == 0 and len(do_apply.specs) == 1
    assert "unattended runs are suspended" in capsys.readouterr().err
    assert [r.result for r in read_records(state)] == ["converged"]

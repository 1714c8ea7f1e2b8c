"""A command that times out is a failure of the run, never a blocked step (issue 11 #5)."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest
from commands.test_unattended import fake_context, wired_do_apply
from fakehost import FakeHost

from reconciler.app.unattended import unattended_apply
from reconciler.core.command import Command, CommandResult
from reconciler.kinds import all_kinds
from reconciler.shell.runner import HostRunner
from reconciler.unattended.runs import read_records

SPEC = """\
apiVersion: reconciler/v1
host:
  name: vm102
  user: user
linger: true
profiles:
  personal:
    port: 18789
"""


class QuickDeadlines(HostRunner):
    """The real runner, with every deadline cut to 0.5 s (the fake's hang is what is tested)."""

    kill_grace_s = 0.1

    def _execute_once(self, command: Command) -> CommandResult:
        return super()._execute_once(replace(command, timeout_s=min(command.timeout_s, 0.5)))


def test_a_hung_systemctl_user_fails_the_run_instead_of_blocking_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = FakeHost(tmp_path / "fake")
    fake.set_linger(fake.user, True)
    host = fake_context(fake, os.getuid())
    runner = QuickDeadlines(host, env=fake.env)
    # `systemctl --user ...` hangs (a wedged user manager); the system scope still answers.
    real = fake.bin_dir / "systemctl"
    moved = fake.bin_dir / "systemctl.real"
    real.rename(moved)
    real.write_text(
        f'#!/bin/sh\ncase " $* " in *" --user "*) exec sleep 60 ;; esac\nexec {moved} "$@"\n'
    )
    real.chmod(0o755)
    spec = tmp_path / "vm102.yaml"
    spec.write_text(SPEC)
    state = tmp_path / "state"
    do_apply = wired_do_apply(host, runner, all_kinds(), non_interactive=True)

    code = unattended_apply(
        spec,
        lock_timeout=0,
        non_interactive=True,
        log_format="text",
        do_apply=do_apply,  # type: ignore[arg-type]
        state=state,
    )
    out = capsys.readouterr().out
    assert code == 1, out
    (record,) = read_records(state)
    assert record.result == "failed", record
    assert "timed out after 0.5 s" in (record.reason or "") or "timed out" in out
    assert "blocked" not in (record.reason or "")
    assert fake.mutating_calls() == []

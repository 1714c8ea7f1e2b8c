"""Log lines: one per action and a summary, as text or JSON."""

from __future__ import annotations

import json

from reconciler.core.action import Action
from reconciler.shell.apply import ActionOutcome
from reconciler.unattended.logs import ActionLog, action_line, message_line, summary_line
from reconciler.unattended.runs import RunRecord

ACTION = Action(
    "profile[ops].service", "update", "clawdbot-gateway-ops.service is inactive: start it"
)
RECORD = RunRecord(
    start="2026-01-26T10:00:00+00:00",
    end="2026-01-26T10:00:03+00:00",
    result="converged",
    applied=1,
    blocked=1,
    spec_path="/srv/spec/vm102.yaml",
    spec_sha256="0123456789abcdef" * 4,
    git_commit="c0ffee0123456789",
    git_dirty=True,
)


def test_text_lines() -> None:
    assert action_line(ActionOutcome(ACTION, "applied"), "text") == (
        "applied update profile[ops].service: clawdbot-gateway-ops.service is inactive: start it"
    )
    failed = action_line(ActionOutcome(ACTION, "failed", "exit 1: Job failed"), "text")
    assert failed.startswith("failed update profile[ops].service:") and failed.endswith(
        "-- exit 1: Job failed"
    )
    assert summary_line(RECORD, "text") == (
        "run converged: 1 applied, 0 failed, 1 blocked, 0 skipped; spec /srv/spec/vm102.yaml "
        "(sha256 0123456789ab); commit c0ffee012345 (dirty tree)"
    )


def test_json_lines() -> None:
    line = json.loads(action_line(ActionOutcome(ACTION, "skipped", "because x failed"), "json"))
    assert line == {
        "event": "action",
        "outcome": "skipped",
        "address": "profile[ops].service",
        "kind": "update",
        "reason": ACTION.reason,
        "detail": "because x failed",
    }
    summary = json.loads(summary_line(RECORD, "json"))
    assert summary["event"] == "summary" and summary["result"] == "converged"
    assert summary["spec_sha256"] == RECORD.spec_sha256
    assert json.loads(message_line("hello", "json", level="warning"))["level"] == "warning"


def test_action_log_writes_one_line_per_call() -> None:
    lines: list[str] = []
    log = ActionLog("text", lines.append)
    log.action(ActionOutcome(ACTION, "applied"))
    log.message("fetch failed")
    log.summary(RECORD)
    assert len(lines) == 3 and all("\n" not in line for line in lines)

"""Log lines for unattended runs: one per action, one summary, on stdout (journald takes them).

Text lines are for `journalctl --user -u reconciler`; journald adds the time and unit, so a
line holds only what happened. `--log-format json` prints one JSON object a line instead
(`event`: "action" | "summary" | "message"), for log shippers.

The line builders are pure; `ActionLog` only owns where the lines go.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Literal

from reconciler.core.secrets import mask_secrets
from reconciler.frozen import frozen
from reconciler.shell.apply import ActionOutcome
from reconciler.unattended.runs import RunRecord

LogFormat = Literal["text", "json"]
LOG_FORMATS: tuple[LogFormat, ...] = ("text", "json")


def action_line(outcome: ActionOutcome, fmt: LogFormat) -> str:
    """`applied create reconcile.timer.unit: <reason>` (+ `: <detail>` when there is one)."""
    action = outcome.action
    if fmt == "json":
        return _json(
            {
                "event": "action",
                "outcome": outcome.outcome,
                "address": action.address,
                "kind": action.kind,
                "reason": action.reason,
                "detail": outcome.detail,
            }
        )
    text = f"{outcome.outcome} {action.kind} {action.address}: {action.reason}"
    return text + (f" -- {outcome.detail}" if outcome.detail else "")


def summary_line(record: RunRecord, fmt: LogFormat) -> str:
    """`run converged: 2 applied, 0 failed, 1 blocked, 0 skipped; spec ... (sha256 ...)`."""
    if fmt == "json":
        data: dict[str, Any] = json.loads(record.to_json())
        return _json({"event": "summary", **data})
    text = (
        f"run {record.result}: {record.applied} applied, {record.failed} failed, "
        f"{record.blocked} blocked, {record.skipped} skipped"
    )
    if record.spec_path:
        text += f"; spec {record.spec_path}"
        if record.spec_sha256:
            text += f" (sha256 {record.spec_sha256[:12]})"
    if record.last_attempted_revision:
        text += f"; revision {record.last_attempted_revision}"
    elif record.git_commit:
        text += f"; commit {record.git_commit[:12]}{' (dirty tree)' if record.git_dirty else ''}"
    if record.reason:
        text += f"; {record.reason}"
    return text


def message_line(text: str, fmt: LogFormat, *, level: str = "info") -> str:
    """A free-form line (a fetch that failed, a suspension): text as is, or a JSON event."""
    if fmt == "json":
        return _json({"event": "message", "level": level, "message": text})
    return text


@frozen
class ActionLog:
    """Where an unattended run's lines go. `action` fits `apply_plan(..., progress=...)`."""

    fmt: LogFormat
    write: Callable[[str], None]  # one line, without its newline

    # Every line passes `mask_secrets`: a command's error output may quote a secret.
    def action(self, outcome: ActionOutcome) -> None:
        self.write(mask_secrets(action_line(outcome, self.fmt)))

    def summary(self, record: RunRecord) -> None:
        self.write(mask_secrets(summary_line(record, self.fmt)))

    def message(self, text: str, *, level: str = "info") -> None:
        self.write(mask_secrets(message_line(text, self.fmt, level=level)))


def _json(data: dict[str, Any]) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)

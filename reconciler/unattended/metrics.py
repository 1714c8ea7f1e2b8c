"""Prometheus metrics of apply runs, as a textfile for node_exporter's textfile collector.

With `metrics: {textfile_dir: DIR}` in the spec every apply (interactive or the timer's) ends by
writing `DIR/reconciler.prom` atomically (temp file, fsync, rename: the collector never reads
half a file). The text is the exposition format (`# HELP`, `# TYPE`, `name{label="v"} value`);
`render` is pure.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path

from reconciler.frozen import frozen

FILE_NAME = "reconciler.prom"
LAST_SUCCESS = "reconciler_last_success_timestamp_seconds"
# `reconciler backup run` writes its own file beside it (a backup never rewrites apply's file).
BACKUP_FILE_NAME = "reconciler-backup.prom"
BACKUP_LAST_SUCCESS = "reconciler_backup_last_success_timestamp_seconds"


@frozen
class RunMetrics:
    """What one run reports."""

    finished_s: float  # Unix time the run ended
    duration_s: float
    result: str  # converged | not-converged | failed | locked | suspended | invalid
    drift: int
    blocked: int
    failed: int
    last_success_s: float | None  # this run's end when it converged, else the previous one
    gateway_up: Mapping[str, bool]  # profile -> its port answers on loopback after the run


_FAMILIES = (
    ("reconciler_last_run_timestamp_seconds", "When the last apply run ended (Unix time)."),
    (LAST_SUCCESS, "When an apply run last converged the host (Unix time)."),
    ("reconciler_drift_actions", "Steps the last run found to do (the host differed)."),
    ("reconciler_blocked_actions", "Steps the last run could not run (blocked)."),
    ("reconciler_failed_actions", "Steps that failed in the last run."),
    ("reconciler_run_duration_seconds", "How long the last apply run took."),
)


def _number(value: float) -> str:
    if math.isinf(value) or math.isnan(value):
        raise ValueError(f"not a finite metric value: {value}")
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


def _label(value: str) -> str:
    """A label value escaped as the exposition format wants (backslash, quote, newline)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render(metrics: RunMetrics) -> str:
    """The textfile (pure): every family with HELP and TYPE, gauges all."""
    values: dict[str, float | None] = {
        "reconciler_last_run_timestamp_seconds": metrics.finished_s,
        LAST_SUCCESS: metrics.last_success_s,
        "reconciler_drift_actions": metrics.drift,
        "reconciler_blocked_actions": metrics.blocked,
        "reconciler_failed_actions": metrics.failed,
        "reconciler_run_duration_seconds": metrics.duration_s,
    }
    lines: list[str] = []
    for name, text in _FAMILIES:
        value = values[name]
        if value is None:  # never converged yet: no sample rather than a made-up time
            continue
        lines += [f"# HELP {name} {text}", f"# TYPE {name} gauge", f"{name} {_number(value)}"]
    lines += [
        "# HELP reconciler_last_run_result The last run's result (1 for the result it had).",
        "# TYPE reconciler_last_run_result gauge",
        f'reconciler_last_run_result{{result="{_label(metrics.result)}"}} 1',
        "# HELP gateway_up Whether the profile's gateway port answered on loopback after the run.",
        "# TYPE gateway_up gauge",
    ]
    lines += [
        f'gateway_up{{profile="{_label(profile)}"}} {int(up)}'
        for profile, up in sorted(metrics.gateway_up.items())
    ]
    return "\n".join(lines) + "\n"


def render_backup(last_success: Mapping[str, float]) -> str:
    """The backup textfile (pure): per profile, when its last backup succeeded (Unix time);
    a profile never backed up has no sample rather than a made-up time."""
    lines = [
        f"# HELP {BACKUP_LAST_SUCCESS} When the profile's last backup succeeded (Unix time).",
        f"# TYPE {BACKUP_LAST_SUCCESS} gauge",
    ]
    lines += [
        f'{BACKUP_LAST_SUCCESS}{{profile="{_label(profile)}"}} {_number(when)}'
        for profile, when in sorted(last_success.items())
    ]
    return "\n".join(lines) + "\n"


# Whom the folder may belong to besides root: (uid, primary gid) of the spec's user.
Owner = tuple[int, int]
MAX_FILE_BYTES = 1 << 20  # our files are a few hundred bytes


def update(directory: Path, name: str, render_from: Callable[[str], str], owner: Owner) -> Path:
    """Replace `directory/name` with `render_from(its previous text)`, atomically (0644).

    The folder is writable by the spec's user, so everything goes through one descriptor of it
    reached without following a symlink through directories only root or `owner` control
    (shell/anchored.py); the previous file is read without blocking and with a size limit, and
    one that is not a regular file of ours (a FIFO, a link to /dev/zero) counts as no previous
    file and is replaced by the rename, never opened for writing.
    """
    from reconciler.bounded import InputRefused
    from reconciler.shell.anchored import open_directory, read_at, replace_at

    path = directory / name
    with open_directory(directory, *owner) as fd:
        try:
            before = (read_at(fd, name, MAX_FILE_BYTES, where=path) or b"").decode(
                "utf-8", errors="replace"
            )
        except InputRefused:
            before = ""
        replace_at(fd, name, render_from(before).encode("utf-8"), 0o644)
    return path


_SAMPLE = re.compile(rf"^{LAST_SUCCESS} (\S+)$", re.MULTILINE)


def previous_success(text: str) -> float | None:
    """The last-success time a previous file of ours holds (None: none, or not ours)."""
    match = _SAMPLE.search(text)
    if not match:
        return None
    try:
        return float(match.group(1))
    except ValueError:
        return None


def write(directory: Path, metrics: RunMetrics, owner: Owner) -> Path:
    """Write `directory/reconciler.prom` atomically (0644: node_exporter reads it); a run that
    did not converge carries the previous file's last success."""

    def text(before: str) -> str:
        if metrics.last_success_s is None and metrics.result != "converged":
            return render(replace(metrics, last_success_s=previous_success(before)))
        return render(metrics)

    return update(directory, FILE_NAME, text, owner)

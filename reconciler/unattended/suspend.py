"""Suspension: pause unattended runs (the timer) without uninstalling the timer.

`<state dir>/suspended.json` exists while suspended and says since when, by whom and why
(Flux's `suspend`/`resume`). While it exists, non-interactive applies exit 0 at once and record
that they were suspended; an interactive `apply` still runs (a human fixing the host by hand is
exactly when the timer should keep out of the way) and says that the timer is suspended.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from reconciler.bounded import read_bounded
from reconciler.core.host import Account
from reconciler.frozen import frozen
from reconciler.shell.files import atomic_write
from reconciler.unattended import ensure_state_dir

SUSPEND_NAME = "suspended.json"


@frozen
class Suspension:
    since: str  # ISO 8601 UTC
    by: str  # user name
    reason: str = ""

    def describe(self) -> str:
        why = f": {self.reason}" if self.reason else ""
        return f"suspended since {self.since} by {self.by}{why}"


def suspend(
    directory: Path, reason: str = "", *, since: str | None = None, by: str | None = None
) -> Suspension:
    """Suspend unattended runs, replacing any suspension in force (the `suspend` command asks
    first: see reconciler/app/unattended.py). `since` defaults to now (ISO 8601 UTC), `by` to
    whoever we are (pass it from a child acting as the user: it must not look names up)."""
    ensure_state_dir(directory)
    state = Suspension(
        since=since or datetime.now(UTC).isoformat(timespec="seconds"),
        by=by if by is not None else Account.current().name,
        reason=reason,
    )
    text = json.dumps(asdict(state), sort_keys=True) + "\n"
    atomic_write(directory / SUSPEND_NAME, text, 0o600, backup=False)
    return state


def resume(directory: Path) -> Suspension | None:
    """Resume unattended runs; returns the suspension that was lifted (None: was not suspended)."""
    previous = current(directory)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(directory / SUSPEND_NAME)
    return previous


def current(directory: Path) -> Suspension | None:
    """The suspension in force, or None. An unreadable file still counts as suspended: when in
    doubt, an unattended run must stay out of the way."""
    path = directory / SUSPEND_NAME
    try:
        text = read_bounded(path, 64 * 1024, follow=False).decode("utf-8", errors="replace")
    except FileNotFoundError:
        return None
    except OSError as exc:
        return Suspension(since="?", by="?", reason=f"(unreadable {path}: {exc.strerror})")
    try:
        data = json.loads(text)
        return Suspension(
            since=str(data["since"]), by=str(data["by"]), reason=str(data.get("reason", ""))
        )
    except (ValueError, KeyError, TypeError):
        return Suspension(since="?", by="?", reason=f"(unparsable {path})")

"""One host whoever runs the command: where run records, backup records and the suspension live,
and as whom they are touched.

The place is the spec user's state directory (`~/.local/state/reconciler/`, see
`host_state_dir`): the user's timer writes there, and so does root after `sudo reconciler apply`
or `sudo reconciler backup run`, so `status` says the same thing to both. Root never writes there
as root: every read and write goes through a child that dropped to the user
(system/as_user.py), so a symlink the user planted in their own state directory can only point
root at what the user could touch anyway. What crosses back from that child is plain data
(lines, dicts); parsing happens here, bounded (system/records.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Any

from reconciler.core.host import Account, HostContext
from reconciler.frozen import frozen
from reconciler.system.as_user import acting_account, call_as
from reconciler.system.records import RecordFile
from reconciler.unattended import ensure_state_dir, host_state_dir
from reconciler.unattended.runs import RUNS_NAME, RunRecord, append_record, parse_records
from reconciler.unattended.suspend import Suspension, current, resume, suspend


@frozen
class StatePlace:
    """The state directory of this host's unattended runs, and the account that touches it
    (None: ourselves)."""

    directory: Path
    account: Account | None = None

    def call(self, work: Callable[[], Any]) -> Any:
        """`work()` as the place's account (a JSON-serialisable answer)."""
        return call_as(self.account, work, 120.0)

    def ensure(self) -> None:
        """Create the directory (0700) as its account."""
        self.call(partial(_ensure, self.directory))

    def append_run(self, record: RunRecord) -> None:
        self.call(partial(_append_run, self.directory, record))

    def runs(self) -> list[RunRecord]:
        """Every run record, oldest first (RunRecordsCorrupt, OSError as `read_records`)."""
        return parse_records(self.call(partial(_read, self.directory, RUNS_NAME)))

    def record_lines(self, name: str) -> list[tuple[str, list[str]]]:
        """(path, lines) of another record file of the store (`backups.jsonl`), oldest first."""
        return [(path, lines) for path, lines in self.call(partial(_read, self.directory, name))]

    def append_line(self, name: str, line: str) -> None:
        self.call(partial(_append_line, self.directory, name, line))

    def suspension(self) -> Suspension | None:
        found = self.call(partial(_current, self.directory))
        return None if found is None else Suspension(**found)

    def suspend(self, reason: str, since: str, by: str) -> Suspension:
        return Suspension(**self.call(partial(_suspend, self.directory, reason, since, by)))

    def resume(self) -> Suspension | None:
        lifted = self.call(partial(_resume, self.directory))
        return None if lifted is None else Suspension(**lifted)


def state_place(host: HostContext | None, own: Path) -> StatePlace:
    """The place for `host`'s spec user: `own` (ours) unless root acts for another user, whose
    own state directory it then is, touched as that user."""
    if host is None:
        return StatePlace(own)
    directory = host_state_dir(host, own)
    if directory == own:
        return StatePlace(own)
    return StatePlace(directory, acting_account(host))


# The work done as the place's account: plain data in, plain data out.


def _ensure(directory: Path) -> str:
    return str(ensure_state_dir(directory))


def _append_run(directory: Path, record: RunRecord) -> str:
    return str(append_record(directory, record))


def _append_line(directory: Path, name: str, line: str) -> str:
    ensure_state_dir(directory)
    return RecordFile(directory, name).append(line)


def _read(directory: Path, name: str) -> list[tuple[str, list[str]]]:
    return RecordFile(directory, name).read()


def _current(directory: Path) -> dict[str, str] | None:
    found = current(directory)
    return None if found is None else asdict(found)


def _suspend(directory: Path, reason: str, since: str, by: str) -> dict[str, str]:
    return asdict(suspend(directory, reason, since=since, by=by))


def _resume(directory: Path) -> dict[str, str] | None:
    lifted = resume(directory)
    return None if lifted is None else asdict(lifted)

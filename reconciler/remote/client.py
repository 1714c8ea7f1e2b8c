"""The admin machine's side: run a reconciler command on a target over one SSH connection.

A call costs one SSH round trip when the target already caches this exact agent (named by its
SHA-256, extracted and byte-compiled there: remote/bootstrap.py), two the first time (the `run`
attempt answers "not cached", the second call carries the agent and the request together; there is
no separate "is it there?" call). Nothing is installed by hand on the target: it needs
python3 >= 3.11.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import field

from reconciler.frozen import frozen
from reconciler.remote import bootstrap
from reconciler.remote.protocol import FILE_PREFIX, HEARTBEAT, PROTOCOL, RESULT_MARK
from reconciler.remote.zipapp import build_agent
from reconciler.shell.ssh import RemoteResult, SshError, SshSession

# The remote shell's exit code for "command not found".
NOT_FOUND = 127


@frozen
class AgentResult:
    """What a remote command did: its exit code, the files it wrote that we asked for, stderr."""

    exit_code: int
    files: Mapping[str, bytes] = field(default_factory=dict)
    stderr: str = ""
    run: Mapping[str, object] | None = None  # the run record an apply wrote there


def file_arg(name: str) -> str:
    """An argv element the agent replaces with the path of the file `name` it was sent."""
    return FILE_PREFIX + name


class RemoteReconciler:
    """Runs reconciler commands on one target through an SshSession."""

    def __init__(self, session: SshSession, *, python: str = "python3") -> None:
        self.session = session
        self.python = python  # the interpreter's name on the target (>= 3.11)
        self.round_trips = 0

    def call(
        self,
        argv: Sequence[str],
        *,
        files: Mapping[str, bytes] = {},
        want: Sequence[str] = (),
        validated: Sequence[str] = (),
        on_output: Callable[[bytes], None] = lambda line: None,
        finish_if_lost: bool = False,
        install_for_timer: str | None = None,
    ) -> AgentResult:
        """Run `reconciler ARGV` there; stream its stdout lines to `on_output`.

        `validated` names the files that are specs this side has validated in full: the target
        then skips only their schema check (it has no jsonschema); it checks everything else.
        `finish_if_lost`: the command changes the host (an apply): if we go away, it finishes
        its reviewed steps there; any other command is stopped there when we go away.
        `install_for_timer`: the file name of the spec to install, with the agent, where the
        reconcile timer will run them, before the command (remote/install.py).
        """
        request = json.dumps(
            {
                "protocol": PROTOCOL,
                "argv": list(argv),
                "files": {n: base64.b64encode(d).decode() for n, d in files.items()},
                "want": list(want),
                "schema_checked": [hashlib.sha256(files[n]).hexdigest() for n in validated],
                "spec": validated[0] if validated else None,  # whose user logs in (elevate.py)
                "finish_if_lost": finish_if_lost,
                "install_for_timer": install_for_timer,
            }
        ).encode()
        agent = build_agent()
        outcome = self._attempt(
            bootstrap.remote_argv(agent.sha256, python=self.python), request, on_output
        )
        if outcome is None:  # not cached there yet: send it with the request
            outcome = self._attempt(
                bootstrap.remote_argv(
                    agent.sha256, python=self.python, install_size=len(agent.data)
                ),
                agent.data + request,
                on_output,
            )
        if outcome is None:
            raise SshError(f"{self.session.target}: the agent could not be stored on the target")
        return outcome

    def _attempt(
        self, remote_argv: list[str], stdin: bytes, on_output: Callable[[bytes], None]
    ) -> AgentResult | None:
        self.round_trips += 1
        record: dict[str, object] | None = None
        finished: RemoteResult | None = None
        held = b""  # the agent puts a newline before its record: not the command's output
        for item in self.session.stream(remote_argv, stdin=stdin, heartbeat=HEARTBEAT):
            if isinstance(item, RemoteResult):
                finished = item
            elif item.startswith(RESULT_MARK):
                record, held = self._record(item[len(RESULT_MARK) :]), b""
            elif item == b"\n" and not held:
                held = item
            else:
                if held:
                    on_output(held)
                    held = b""
                on_output(item)
        assert finished is not None
        stderr = finished.stderr.decode(errors="replace")
        if finished.exit_code == bootstrap.NOT_CACHED:
            return None
        if record is None:
            raise SshError(
                _why_no_result(str(self.session.target), self.python, finished.exit_code, stderr)
            )
        files, code = record["files"], record["exit"]
        assert isinstance(files, dict) and isinstance(code, int)  # checked by _record
        return AgentResult(
            exit_code=code,
            files={name: base64.b64decode(data, validate=True) for name, data in files.items()},
            stderr=stderr,
            run=run if isinstance(run := record.get("run"), dict) else None,
        )

    def _record(self, raw: bytes) -> dict[str, object]:
        """The agent's result record, checked: {"exit": int, "files": {name: base64}, "run"}."""
        try:
            record = json.loads(raw)
            files = record["files"]
            ok = (
                isinstance(record, dict)
                and type(record.get("exit")) is int
                and isinstance(files, dict)
                and all(isinstance(k, str) and isinstance(v, str) for k, v in files.items())
            )
            if ok:
                for data in files.values():
                    base64.b64decode(data, validate=True)
        except (ValueError, TypeError, KeyError):
            ok = False
        if not ok:
            raise SshError(
                f"{self.session.target}: the remote reconciler's result record is malformed "
                "(another program's output, or a damaged agent); nothing was read from it"
            )
        assert isinstance(record, dict)
        return record


def _why_no_result(target: str, python: str, code: int, stderr: str) -> str:
    """The agent ended without its result record: say what the target is missing."""
    if code == NOT_FOUND:
        return (
            f"{target}: {python} is not installed there (the target needs Python 3.11 or newer; "
            "Debian: apt-get install python3)"
        )
    if code == bootstrap.TOO_OLD:
        return f"{target}: {stderr.strip() or python + ' there is older than 3.11'}"
    if code == bootstrap.BAD_CACHE:  # the bootstrap's message names the folder and the fix
        return f"{target}: {stderr.strip() or 'the agent cache there is not usable'}"
    last = next((ln for ln in reversed(stderr.splitlines()) if ln.strip()), "")
    return f"{target}: the remote reconciler ended with exit {code} before finishing: {last}"

"""The agent: what runs on the target, inside the shipped zipapp.

It runs one reconciler command there, exactly as the command line would, with the files the admin
machine sent (the spec, a reviewed plan) in a private temporary folder, and sends back the files
the command wrote (a snapshot) after its output. stdin holds one JSON request:

    {"protocol": 1, "argv": ["probe", "@file:spec.yaml", "--out", "@file:snapshot.json"],
     "files": {"spec.yaml": "<base64>"}, "want": ["snapshot.json"],
     "schema_checked": ["<sha256 of the spec bytes>"], "spec": "spec.yaml",
     "finish_if_lost": false, "install_for_timer": null}

The command's own output streams through unchanged; the last line is the result record, marked
with RESULT_MARK so that the client can tell it from anything the command printed. Every
HEARTBEAT_S a heartbeat line goes to stderr (the client's proof of life for a command that is
quiet for a while). When writing it fails, or (for a command that stops with its client)
stdout's reader is gone, the client is gone: a command that changes the host (`finish_if_lost`:
an apply) carries on to the end of its reviewed steps; any other (a probe, `logs -f`) is
interrupted, so nothing runs on for a client that left.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import io
import json
import os
import select
import shutil
import signal
import sys
import tempfile
import threading
from typing import Any, NoReturn

from reconciler.remote.protocol import FILE_PREFIX, HEARTBEAT, PROTOCOL, RESULT_MARK, Side

MAX_REQUEST = 64 * 1024 * 1024
HEARTBEAT_S = 10.0  # well under the client's idle deadline (shell/ssh.py IDLE_TIMEOUT_S)


def _bad_request(message: str) -> int:
    sys.stderr.write(f"reconciler agent: bad request: {message}\n")
    return 2


class _LossTolerantStream(io.TextIOWrapper):
    """stdout that keeps the command going when the admin's connection is gone.

    A lost SSH connection must not kill an apply half way: the steps are idempotent and atomic,
    but finishing the reviewed plan (and its run record) leaves the host in a known state.
    """

    def write(self, text: str) -> int:
        try:
            return super().write(text)
        except (BrokenPipeError, OSError):
            return len(text)

    def flush(self) -> None:
        with contextlib.suppress(BrokenPipeError, OSError):
            super().flush()


def main() -> int:
    """Run the requested command; print its output, then the result record."""
    Side.on_target = True  # every command here acts on this host (protocol.Side)
    # sshd hangs up on us when the connection drops: carry on (see _LossTolerantStream).
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    sys.stdout = _LossTolerantStream(sys.stdout.buffer, encoding="utf-8", line_buffering=True)
    sys.stderr = _LossTolerantStream(sys.stderr.buffer, encoding="utf-8", line_buffering=True)
    raw = sys.stdin.buffer.read(MAX_REQUEST + 1)
    if len(raw) > MAX_REQUEST:
        return _bad_request("larger than 64 MiB")
    try:
        request: dict[str, Any] = json.loads(raw)
    except ValueError as exc:
        return _bad_request(f"not JSON ({exc})")
    if request.get("protocol") != PROTOCOL:
        return _bad_request(f"protocol {request.get('protocol')!r}, this agent speaks {PROTOCOL}")
    from reconciler.remote.elevate import run_as_root

    elevated = run_as_root(raw, request)
    if elevated is not None:
        return elevated  # it printed the result record (and beat the heart)
    _start_heartbeat(stop_when_lost=not request.get("finish_if_lost", False))
    workdir = tempfile.mkdtemp(prefix="reconciler-remote-")
    try:
        code = _run(request, workdir)
        result = {
            "exit": code,
            "files": _collect(request.get("want", []), workdir),
            "run": _run_record(request, workdir),
        }
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    sys.stderr.flush()  # before the record: the client has all of stderr once the record is in
    sys.stdout.write("\n" + RESULT_MARK.decode() + json.dumps(result) + "\n")
    sys.stdout.flush()
    _exit_now()


def _exit_now() -> NoReturn:
    """End the process as soon as the record is out: the client waits for the session's end,
    and the interpreter's own teardown (every module and object of a run freed one by one)
    was a tenth of a converged remote plan's wall time. Exit handlers still run (they end the
    `sudo -u` helpers: system/as_user.py); nothing else is left to flush or remove."""
    atexit._run_exitfuncs()
    os._exit(0)


def _start_heartbeat(*, stop_when_lost: bool) -> None:
    """Write HEARTBEAT to stderr every HEARTBEAT_S; when that fails the client is gone. A
    command that stops with its client also watches stdout, where the loss shows first.

    Why stdout too: behind a persisted SSH master (ControlPersist) the connection outlives the
    client. When the client's `ssh` dies, the master closes only the stdout side of the session
    (OpenSSH sends `eow@openssh.com`: sshd closes its read end of our stdout pipe) and keeps
    reading our stderr, so the heartbeat's writes go on succeeding and a quiet `logs -f` would
    run on there for ever. A pipe whose reader is gone reports POLLERR at once, written to or
    not (measured with OpenSSH 9.2: docs/remote.md).
    """
    pid = os.getpid()
    watch = select.poll()
    if stop_when_lost:
        watch.register(1, 0)  # no event asked for: POLLERR/POLLHUP/POLLNVAL are always reported

    def beat() -> None:
        while True:
            if watch.poll(HEARTBEAT_S * 1000):  # stdout's reader is gone (stop_when_lost only)
                break
            try:
                os.write(2, HEARTBEAT)  # one write of one whole line: never mixed into another
            except OSError:
                break
        if stop_when_lost:
            # Ctrl-C's path: the CLI ends the command and the runner its child processes.
            os.kill(pid, signal.SIGINT)

    threading.Thread(target=beat, name="heartbeat", daemon=True).start()


def _path(workdir: str, name: str) -> str:
    """A file of the request, inside the private folder (relative names with folders allowed:
    a saved plan names its spec relative to where it was made)."""
    parts = name.split("/")
    if not name or name.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"bad file name {name!r}")
    return os.path.join(workdir, *parts)


def _run(request: dict[str, Any], workdir: str) -> int:
    from reconciler.spec import loader

    for name, data in request.get("files", {}).items():
        path = _path(workdir, name)
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(base64.b64decode(data))
    loader.SCHEMA_CHECKED.update(request.get("schema_checked", []))
    if request.get("install_for_timer"):
        code = _install_for_timer(_path(workdir, request["install_for_timer"]))
        if code:
            return code
    argv = [
        _path(workdir, arg[len(FILE_PREFIX) :]) if arg.startswith(FILE_PREFIX) else arg
        for arg in request["argv"]
    ]
    from reconciler.cli import cli

    # Relative names (a saved plan's spec) resolve in the private folder, as where they were made.
    before = os.getcwd()
    os.chdir(workdir)
    try:
        cli.main(args=argv, prog_name="reconciler", standalone_mode=True)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        os.chdir(before)
    return 0


def _install_for_timer(spec_file: str) -> int:
    """Install this agent and the spec where the timer will run them (remote/install.py)."""
    import hashlib
    from pathlib import Path

    from reconciler.remote.install import InstallFailed, install_for_timer
    from reconciler.spec import SpecInvalid, loader

    with open(spec_file, "rb") as stream:
        digest = hashlib.sha256(stream.read()).hexdigest()
    if digest not in loader.SCHEMA_CHECKED:
        return 0  # only a spec the admin machine validated is installed for the timer
    try:
        install_for_timer(Path(spec_file), digest)
    except (InstallFailed, SpecInvalid, OSError) as exc:
        sys.stderr.write(f"error: {exc}; nothing was changed\n")
        return 1
    return 0


def _run_record(request: dict[str, Any], workdir: str) -> dict[str, Any] | None:
    """The run record an apply in this process wrote (its pid is ours), for fleet summaries:
    in the host's place for the spec's user (app/unattended.py place_of_spec), read as the
    account that owns it. Only a command that changes the host writes one: a probe (every
    remote plan) is not kept waiting for the records' code to load."""
    if not request.get("finish_if_lost"):
        return None
    try:
        from pathlib import Path

        from reconciler.app.context import AppContext
        from reconciler.app.unattended import place_of_spec

        spec = request.get("spec")
        if not isinstance(spec, str):
            return None
        place = place_of_spec(AppContext(), Path(_path(workdir, spec)))
        mine = [r for r in place.runs() if r.pid == os.getpid()]
    except Exception:  # no record, or unreadable: the exit code still says how it went
        return None
    return json.loads(mine[-1].to_json()) if mine else None


def _collect(names: list[str], workdir: str) -> dict[str, str]:
    files = {}
    for name in names:
        try:
            with open(_path(workdir, name), "rb") as stream:
                files[name] = base64.b64encode(stream.read()).decode()
        except FileNotFoundError:
            continue  # the command failed before writing it; its exit code says why
    return files


def timer_main() -> None:
    """The installed zipapp's entry point (`python3 reconciler-V-H.pyz apply SPEC ...`, what the
    timer runs after a remote apply, remote/install.py): the command line, with the admin
    machine's validation of exactly that spec (`SPEC.validated` beside it)."""
    from reconciler.cli import main as cli_main
    from reconciler.remote.install import schema_checked_beside
    from reconciler.spec import loader

    loader.SCHEMA_CHECKED.update(schema_checked_beside(sys.argv[1:]))
    cli_main()

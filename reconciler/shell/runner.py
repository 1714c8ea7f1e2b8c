"""The only place that executes anything: commands (system/process.py), and file operations
(shell/files.py), as the spec's user when we are root (system/as_user.py).

Two classes, so that a dry run cannot mutate by construction: a `ReadOnlyRunner` has no way to
execute an operation and refuses any command marked mutating; only a `HostRunner` can change
the host, and only `apply` without `--dry-run` ever builds one.
"""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import time
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from reconciler.core.action import (
    BackupProfile,
    EnsureDirectory,
    EnsureSecretEnv,
    ForgetBadVersion,
    ForgetFailedInstall,
    GatedSwitch,
    InstallVersion,
    MarkBadVersion,
    MoveAside,
    Operation,
    RemoveFile,
    RemoveTree,
    RestoreInPlace,
    RestoreSnapshot,
    RunCommand,
    VerifySnapshot,
    WaitForPort,
    WriteFile,
    WriteTextfile,
)
from reconciler.core.command import TIMED_OUT, Command, CommandResult
from reconciler.core.execution import OperationResult as OperationResult  # re-exported
from reconciler.core.host import Account, HostContext, user_sudoers_line
from reconciler.core.secrets import learn_secrets
from reconciler.facts.sudo_check import (
    SudoersPathProbe,
    sudo_hint,
    user_sudo_hint,
)
from reconciler.shell.files import FileOperation, file_operation
from reconciler.system.as_user import acting_account, call_as
from reconciler.system.process import GRACE_S, Credentials, run_process

if TYPE_CHECKING:
    from reconciler.core.day2 import BackupReport, RestoreReport, VerifyReport

_SUDO_REFUSALS = (
    "a password is required",
    "a terminal is required",
    "is not allowed to execute",
    "not in the sudoers file",
    "may not run sudo",
)


class MutationRefused(RuntimeError):
    """A read-only runner was asked to run a mutating command (a bug, never a user error)."""


def tcp_answers(port: int) -> bool:
    """True when something accepts a TCP connection on 127.0.0.1:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        try:
            sock.connect(("127.0.0.1", port))
        except OSError:
            return False
    return True


class ReadOnlyRunner:
    """Runs read-only commands (probes). Holds no method that could change the host."""

    manager_start_timeout_s = 20.0
    kill_grace_s = GRACE_S  # between SIGTERM and SIGKILL of a command's tree at its deadline

    def __init__(self, host: HostContext, env: Mapping[str, str] | None = None) -> None:
        self.host = host
        self.env = dict(os.environ if env is None else env)
        if host.acting_as_user and host.user is not None:
            # `sudo -u`, `su -c`, cron and timers start us without the session variables;
            # `systemctl --user` needs them to find the user's manager, which linger keeps up.
            runtime = f"/run/user/{host.user.uid}"
            self.env.setdefault("XDG_RUNTIME_DIR", runtime)
            self.env.setdefault("DBUS_SESSION_BUS_ADDRESS", f"unix:path={runtime}/bus")
        self.log: list[CommandResult] = []

    def run(self, command: Command) -> CommandResult:
        """Run a read-only command; refuses (raises) any command marked mutating."""
        if command.mutating:
            raise MutationRefused(f"refusing a mutating command here: {command.display()}")
        return self._execute(command)

    def stream(
        self, command: Command, on_line: Callable[[str], None], on_error: Callable[[str], None]
    ) -> CommandResult:
        """Run a read-only command without a deadline (`journalctl -f` ends on Ctrl-C), handing
        each line of its output to `on_line` as it comes (stderr, read after, to `on_error`).
        Its process tree is ended when we are interrupted."""
        import secrets
        import subprocess

        from reconciler.system.process import GRACE_S, MARKER, kill_tree

        if command.mutating:
            raise MutationRefused(f"refusing a mutating command here: {command.display()}")
        argv, refusal = self.wrap(command)
        if refusal:
            return self._record(CommandResult(command, argv, None, error=refusal))
        executable = self._which(argv[0])
        if executable is None or self._which(command.argv[0]) is None:
            return self._record(CommandResult(command, argv, None, error="not installed"))
        tree = secrets.token_hex(8)
        with subprocess.Popen(
            (executable, *argv[1:]),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**self.env, MARKER: tree},
            start_new_session=True,
            close_fds=True,
        ) as proc:
            assert proc.stdout is not None and proc.stderr is not None
            try:
                for raw in proc.stdout:
                    on_line(raw.decode("utf-8", "replace").rstrip("\n"))
                errors = proc.stderr.read().decode("utf-8", "replace")
                code = proc.wait()
            except BaseException:
                kill_tree(proc.pid, tree, grace_s=GRACE_S)
                raise
        for line in errors.splitlines():
            on_error(line)
        if code < 0:
            return self._record(CommandResult(command, argv, None, error=f"signal {-code}"))
        return self._record(CommandResult(command, argv, code, stderr=errors))

    def wrap(self, command: Command) -> tuple[tuple[str, ...], str | None]:
        """The argv as it will really run (sudo -n / runuser added), or why it cannot run."""
        argv = command.argv
        if command.scope == "user":
            user = self.host.user
            if user is None:
                return argv, f"user {self.host.user_name!r} does not exist on this host"
            if not self.host.acting_as_user:
                if self.host.is_root:
                    become: tuple[str, ...] = ("runuser", "-u", user.name, "--")
                elif self.host.sudo_to_user:  # an admin account: sudo's rules, one call each
                    become = ("sudo", "-n", "-u", user.name, "--")
                else:
                    return argv, (
                        f"runs as {user.name}; we are {self.host.invoker.name} "
                        f"(run as {user.name} or as root, or allow {self.host.invoker.name} "
                        f"to act as {user.name} in /etc/sudoers.d/reconciler, edited with "
                        f"visudo: {user_sudoers_line(self.host.invoker.name, user.name)})"
                    )
                runtime = f"/run/user/{user.uid}"
                argv = (
                    *become,
                    "env",
                    f"HOME={user.home}",
                    f"XDG_RUNTIME_DIR={runtime}",
                    f"DBUS_SESSION_BUS_ADDRESS=unix:path={runtime}/bus",
                    f"PATH={':'.join(self.host.user_search_path())}",
                    *argv,
                )
        elif command.needs_root and not self.host.is_root:
            argv = ("sudo", "-n", *argv)
        return argv, None

    def _execute(self, command: Command) -> CommandResult:
        result = self._execute_once(command)
        if command.scope != "user" or not command.mutating:
            return result
        # `loginctl enable-linger` starts user@UID.service asynchronously: a step that talks to
        # the user's manager right after it may find no bus yet. Mutating steps only run when
        # the plan expects the manager, so waiting a little for it is right; probes never wait.
        deadline = time.monotonic() + self.manager_start_timeout_s
        while _manager_not_up(result) and time.monotonic() < deadline:
            time.sleep(0.25)
            result = self._execute_once(command)
        return result

    def _execute_once(self, command: Command) -> CommandResult:
        started = time.monotonic()
        argv, refusal = self.wrap(command)
        if refusal:
            return self._record(CommandResult(command, argv, None, error=refusal))
        program = self._which(command.argv[0])
        if program is None:
            return self._record(CommandResult(command, argv, None, error="not installed"))
        executable = self._which(argv[0]) if argv is not command.argv else program
        if executable is None:
            return self._record(CommandResult(command, argv, None, error=f"{argv[0]}: not found"))
        env = self.env
        if command.unset_env:
            env = {k: v for k, v in env.items() if k not in command.unset_env}
        start = argv
        credentials = None
        if command.env_file is not None:
            try:
                values = self._env_file(command)
            except (OSError, ValueError) as exc:
                return self._record(CommandResult(command, argv, None, error=str(exc)))
            dropped = self._start_as(command, program, values)
            if dropped is None:
                env = {**env, **values}
                if argv[:3] == ("sudo", "-n", "-u") and values:
                    # sudo resets the environment: name the variables it must pass on (only
                    # the names are in argv; `NOPASSWD: ALL` as the user implies SETENV).
                    keep = f"--preserve-env={','.join(sorted(values))}"
                    start = (*argv[:2], keep, *argv[2:])
            else:
                start, env, credentials = dropped
                executable = start[0]
        try:
            proc = run_process(
                (executable, *start[1:]),
                env=env,
                stdin=None if command.stdin is None else command.stdin.encode("utf-8"),
                timeout_s=command.timeout_s,
                grace_s=self.kill_grace_s,
                credentials=credentials,
                guard=command.mutating,  # npm must not outlive a killed apply
            )
        except OSError as exc:
            return self._record(
                CommandResult(command, argv, None, error=f"{start[0]}: {exc.strerror or exc}")
            )
        if proc.timed_out:
            return self._record(
                CommandResult(
                    command,
                    argv,
                    None,
                    stdout=_text(proc.stdout),
                    stderr=_text(proc.stderr),
                    error=f"{TIMED_OUT} after {command.timeout_s:g} s",
                    duration_s=proc.duration_s,
                )
            )
        if proc.exit_code < 0:
            return self._record(
                CommandResult(command, argv, None, error=f"killed by signal {-proc.exit_code}")
            )
        result = CommandResult(
            command,
            argv,
            proc.exit_code,
            stdout=_text(proc.stdout),
            stderr=_text(proc.stderr),
            duration_s=time.monotonic() - started,
        )
        if argv[:2] == ("sudo", "-n") and result.exit_code != 0:
            refused = next((r for r in _SUDO_REFUSALS if r in result.stderr), None)
            if refused:
                result = CommandResult(
                    command,
                    argv,
                    None,
                    stdout=result.stdout,
                    stderr=result.stderr,
                    error=self._refusal_hint(command, argv, refused),
                    duration_s=result.duration_s,
                )
        return self._record(result)

    def _refusal_hint(self, command: Command, argv: tuple[str, ...], refused: str) -> str:
        """Why sudo did not run `command`, with the exact sudoers line that would allow it."""
        invoker = self.host.invoker.name
        if argv[:3] == ("sudo", "-n", "-u") and self.host.user is not None:
            return user_sudo_hint(invoker, self.host.user.name, refused)
        program = SudoersPathProbe(command.argv[0]).read(self.host)
        return sudo_hint(command, invoker, refused, program)

    def _env_file(self, command: Command) -> dict[str, str]:
        """The variables of `command.env_file`, read as (and only when it is a regular file
        owned by) whoever the command runs as (shell/env_file.py)."""
        from reconciler.shell.env_file import read_env_file

        assert command.env_file is not None
        as_user = command.scope == "user"
        owner = self.host.user if as_user else self.host.invoker
        return read_env_file(
            command.env_file, owner, acting_account(self.host) if as_user else None
        )

    def _start_as(
        self, command: Command, program: str, values: Mapping[str, str]
    ) -> tuple[tuple[str, ...], dict[str, str], Credentials] | None:
        """How to start a user-scope command carrying the user's variables when we are root:
        not through `runuser`, which would run as root with those variables in its
        environment (`LD_PRELOAD` in the user's file would load the user's code into root's
        process, `PATH` would pick root's `runuser`), but dropped to the user between fork and
        exec, with an environment made only of the session variables `runuser ... env` sets
        and the file's values. None when no drop is needed (we are the user, or not root)."""
        user = self.host.user
        if command.scope != "user" or user is None or self.host.acting_as_user:
            return None
        if not self.host.is_root:
            return None  # an admin account: `sudo -n -u` passes the variables (wrap)
        if os.geteuid() != 0:
            return None  # nothing to drop (a test modelling root): the user's variables stay ours
        runtime = f"/run/user/{user.uid}"
        search = ":".join(self.host.user_search_path())
        found = program if os.sep in command.argv[0] else shutil.which(command.argv[0], path=search)
        env = {
            "HOME": str(user.home),
            "USER": user.name,
            "LOGNAME": user.name,
            "XDG_RUNTIME_DIR": runtime,
            "DBUS_SESSION_BUS_ADDRESS": f"unix:path={runtime}/bus",
            "PATH": search,
            **values,
        }
        return (found or program, *command.argv[1:]), env, _credentials(user)

    def _which(self, program: str) -> str | None:
        if os.sep in program:
            return program if os.access(program, os.X_OK) else None
        return shutil.which(program, path=self.env.get("PATH", os.defpath))

    def _record(self, result: CommandResult) -> CommandResult:
        # `--token X` in an argv, `Environment=...` in `systemctl show`: hidden from now on.
        learn_secrets(shlex.join(result.argv))
        learn_secrets(result.stdout)
        self.log.append(result)
        return result


def _credentials(user: Account) -> Credentials:
    try:
        groups = tuple(os.getgrouplist(user.name, user.gid))
    except OSError:
        groups = (user.gid,)
    return Credentials(user.uid, user.gid, groups)


def _manager_not_up(result: CommandResult) -> bool:
    """The user's manager is not (yet) there: no bus socket to connect to."""
    return result.exit_code not in (None, 0) and "Failed to connect to bus" in result.stderr


class HostRunner(ReadOnlyRunner):
    """A runner that may change the host: runs mutating commands and file operations."""

    def __init__(
        self,
        host: HostContext,
        env: Mapping[str, str] | None = None,
        *,
        port_answers: Callable[[int], bool] = tcp_answers,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(host, env)
        self.port_answers = port_answers
        self.sleep = sleep
        # version -> (profile, why) of a switch this runner rolled back: not tried again on the
        # next profile of the same apply (it would cost that profile the same downtime).
        self.refused_versions: dict[str, tuple[str, str]] = {}
        # Programs (node and entry point) a switch warmed up in this run (shell/switch.py).
        self.warmed: set[tuple[str, ...]] = set()

    def run(self, command: Command) -> CommandResult:
        return self._execute(command)

    def execute(self, operation: Operation) -> OperationResult:
        """Carry out one operation; never raises for a failure of the host, reports it."""
        try:
            return self._dispatch(operation)
        except OSError as exc:
            where = f": {exc.filename}" if exc.filename else ""
            return OperationResult(operation, False, f"{exc.strerror or exc}{where}")

    def _dispatch(self, operation: Operation) -> OperationResult:
        # The one dispatch over operation types: a table, checked complete by a test.
        handler = self._handlers.get(type(operation))
        if handler is None:
            raise TypeError(f"unknown operation {operation!r}")
        return handler(self, operation)

    def _run_command(self, operation: RunCommand) -> OperationResult:
        result = self.run(operation.command)
        return OperationResult(operation, result.ok, "" if result.ok else result.summary(), result)

    def _file_operation(self, operation: FileOperation) -> OperationResult:
        # As root, in a child that dropped to the spec's user (reconciler.system.as_user); a
        # token it generates or keeps is handed back to be masked here too.
        detail = call_as(acting_account(self.host), partial(file_operation, operation))
        return OperationResult(operation, True, str(detail))

    _handlers: ClassVar[Mapping[type, Callable[[Any, Any], OperationResult]]] = {
        RunCommand: _run_command,
        WaitForPort: lambda runner, op: runner._wait_for_port(op),
        EnsureDirectory: _file_operation,
        WriteFile: _file_operation,
        RemoveFile: _file_operation,
        MoveAside: _file_operation,
        EnsureSecretEnv: _file_operation,
        GatedSwitch: lambda runner, op: runner._gated_switch(op),
        InstallVersion: lambda runner, op: runner._install_version(op),
        RemoveTree: lambda runner, op: runner._remove_tree(op),
        BackupProfile: lambda runner, op: _day2(runner, op),
        RestoreSnapshot: lambda runner, op: _day2(runner, op),
        RestoreInPlace: lambda runner, op: _day2(runner, op),
        VerifySnapshot: lambda runner, op: _day2(runner, op),
        WriteTextfile: lambda runner, op: runner._write_textfile(op),
        MarkBadVersion: lambda runner, op: runner._memory_edit(op),
        ForgetBadVersion: lambda runner, op: runner._memory_edit(op),
        ForgetFailedInstall: lambda runner, op: runner._memory_edit(op),
    }

    def _memory_edit(
        self, op: MarkBadVersion | ForgetBadVersion | ForgetFailedInstall
    ) -> OperationResult:
        # The memory is in the spec user's home: edited as that user (shell/memory.py).
        from reconciler.shell.memory import edit_memory

        detail = call_as(acting_account(self.host), partial(edit_memory, op))
        return OperationResult(op, True, str(detail))

    def _write_textfile(self, op: WriteTextfile) -> OperationResult:
        # The folder is the spec user's to write: as that user, through one descriptor of it
        # reached without following a link through a folder anyone else controls.
        user = self.host.user
        owner = (user.uid, user.gid) if user is not None else (os.geteuid(), os.getegid())
        write = partial(_write_textfile, op.directory, op.name, op.content, owner)
        return OperationResult(op, True, str(call_as(acting_account(self.host), write)))

    def _install_version(self, op: InstallVersion) -> OperationResult:
        from reconciler.shell.install import install_version, record_outcome

        ok, detail, done = install_version(op, self.host, self.run)
        record_outcome(op, self.host, ok, detail)
        return OperationResult(op, ok, detail, done[-1] if done else None)

    def _remove_tree(self, op: RemoveTree) -> OperationResult:
        from reconciler.shell.install import run_remove_tree

        return OperationResult(op, True, str(run_remove_tree(op, self.host)))

    def _gated_switch(self, op: GatedSwitch) -> OperationResult:
        from reconciler.shell.switch import run_switch

        refused = self.refused_versions.get(op.to_version)
        if refused is not None and refused[0] != op.profile:
            return OperationResult(
                op,
                False,
                f"not switched: {op.to_version} was just rolled back on profile {refused[0]} "
                f"in this run ({refused[1]}); {op.profile} keeps {op.from_version}",
            )
        report = run_switch(self, op)
        if isinstance(report, str):
            return OperationResult(op, False, report)
        if not report.ok:
            self.refused_versions.setdefault(op.to_version, (op.profile, report.reason))
        return OperationResult(op, report.ok, report.message(), report=report)

    def _wait_for_port(self, op: WaitForPort) -> OperationResult:
        deadline = time.monotonic() + op.timeout_s
        while True:
            if self.port_answers(op.port):
                return OperationResult(op, True)
            if time.monotonic() >= deadline:
                return OperationResult(
                    op, False, f"nothing answered on 127.0.0.1:{op.port} within {op.timeout_s:g} s"
                )
            self.sleep(0.5)


def _write_textfile(directory: Path, name: str, content: str, owner: tuple[int, int]) -> str:
    # Module-level (a partial, never a closure): an admin's helper gets it pickled.
    from reconciler.shell.anchored import open_directory, replace_at

    with open_directory(directory, *owner) as fd:
        replace_at(fd, name, content.encode("utf-8"), 0o644)
    return str(directory / name)


def _day2(runner: HostRunner, op: Operation) -> OperationResult:
    """A backup use case's operation: what happened is in the report (core/day2.py)."""
    # Imported here: restic, the archives and their reports are for the backup commands, and
    # every plan builds a runner (about 60 M instructions of imports it would never use).
    from reconciler.shell import backup

    report: BackupReport | RestoreReport | VerifyReport
    if isinstance(op, BackupProfile):
        report = backup.run_backup(runner, op)
    elif isinstance(op, RestoreSnapshot):
        report = backup.run_restore(runner, op)
    elif isinstance(op, RestoreInPlace):
        report = backup.run_restore_in_place(runner, op)
    else:
        assert isinstance(op, VerifySnapshot)  # the handlers' table sends only these four
        report = backup.run_verify(runner, op)
    return OperationResult(op, report.ok, report.problem, backup=report)


def _text(data: bytes | str | None) -> str:
    if data is None:
        return ""
    if isinstance(data, bytes):
        return data.decode("utf-8", errors="replace")
    return data

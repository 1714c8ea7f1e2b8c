"""Use cases against a host reached over SSH: probe there, plan here, run the reviewed plan there.

The admin machine validates the spec and plans; the target only probes (one call returns every
fact, as `reconciler probe` records them) and runs a saved plan, which it refuses when the host no
longer gives exactly that plan. So what runs there is what was reviewed here, as with `plan --out`
and `apply PLAN` on one machine.

When does a command go over SSH? `--target ssh://...` says so; `--target local` says not; without
either, a spec with `host.ssh` is reached over SSH unless this machine is that host (the timer on
the host itself always runs locally) or the host check is off (`make plan` on any machine). The
agent on a target never goes onward: there, every command is about that host.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler.app.context import EXIT_USAGE, AppContext, Failed
from reconciler.frozen import frozen

if TYPE_CHECKING:
    from reconciler.app.plan_pass import Probed
    from reconciler.core.host import HostContext
    from reconciler.remote.client import AgentResult, RemoteReconciler
    from reconciler.render.plan_context import SnapshotSource
    from reconciler.shell.runner import ReadOnlyRunner
    from reconciler.shell.ssh import SshTarget
    from reconciler.spec.model import Host, Spec

LOCAL = "local"
# The names the spec and a saved plan travel under (the agent's private folder is their cwd).
SPEC_FILE = "spec.yaml"
PLAN_FILE = "plan.json"
SNAPSHOT_FILE = "snapshot.json"


class Unreachable(Failed):
    """The host could not be reached (or the connection was lost): say so, distinctly."""


@frozen
class Reach:
    """How the command line asked to reach the host: `--target`, `--ssh-config`."""

    target: str | None = None  # ssh://..., "local", or None: the spec decides
    ssh_config: Path | None = None


@frozen
class Remote:
    """A resolved remote host: where, with which interpreter and ssh options."""

    ssh: SshTarget
    python: str = "python3"
    options: tuple[str, ...] = ()
    persist_s: int = 0  # how long the connection stays up after the run (ssh_persist_seconds)

    @property
    def label(self) -> str:
        return str(self.ssh)


# RECONCILER_SSH_PERSIST=N keeps the connection to a host up N seconds after a run (OpenSSH's
# ControlPersist): `plan` then `apply`, or the next fleet run, skip the handshake. Off by
# default until on has passed a fresh-clone CI (docs/remote.md). A streamed command (`logs -f`)
# ends there with its client in both modes: the agent watches its stdout, the side a persisted
# master closes when the client goes (agent.py _start_heartbeat, docs/remote.md).
PERSIST_VARIABLE = "RECONCILER_SSH_PERSIST"
PERSIST_DEFAULT_S = 0


def ssh_persist_seconds(environ: Mapping[str, str]) -> int:
    """RECONCILER_SSH_PERSIST: idle seconds the connection outlives the run (0: closed with it)."""
    text = environ.get(PERSIST_VARIABLE, "").strip()
    if not text:
        return PERSIST_DEFAULT_S
    if not text.isdigit() or int(text) > 86400:
        raise Failed(
            f"{PERSIST_VARIABLE}={text!r}: write the seconds the SSH connection stays up after "
            "a run, from 0 (closed with the run) to 86400",
            code=EXIT_USAGE,
        )
    return int(text)


def resolve(spec: Spec, reach: Reach, *, host_check: bool, this_host: str = "") -> Remote | None:
    """The remote host to use for `spec`, or None for this machine (module docstring)."""
    return resolve_host(spec.host, reach, host_check=host_check, this_host=this_host)


def resolve_host(
    host: Host, reach: Reach, *, host_check: bool, this_host: str = ""
) -> Remote | None:
    """resolve() from the spec's `host` section alone."""
    import os

    from reconciler.remote.protocol import Side

    options = ("-F", str(reach.ssh_config)) if reach.ssh_config else ()
    python = host.ssh.python if host.ssh else "python3"
    if reach.target == LOCAL or Side.on_target:
        return None
    persist = ssh_persist_seconds(os.environ)
    # The ssh module only when going there: a local plan (the timer's) does not import it.
    if reach.target is not None:
        from reconciler.shell.ssh import SshTarget

        try:
            return Remote(SshTarget.parse(reach.target), python, options, persist)
        except ValueError as exc:
            raise Failed(f"--target: {exc}", code=EXIT_USAGE) from None
    ssh = host.ssh
    if ssh is None or not host_check:
        return None
    # os.uname() is gethostname(2) on Linux, without importing the socket module.
    here = (this_host or os.uname().nodename).split(".")[0]
    if here == host.name.split(".")[0]:
        return None
    from reconciler.shell.ssh import SshTarget

    return Remote(SshTarget(ssh.address, ssh.user, ssh.port), python, options, persist)


def early_connection(spec_path: Path, reach: Reach, host_check: bool) -> RemoteHost | None:
    """Start connecting to the host the spec file names before the spec is validated.

    The SSH handshake (several network round trips and a key exchange) then runs while this
    side loads and validates the spec, instead of after it (measured: 0.2 to 0.45 s of a
    converged remote plan's wall time at a load of 7 to 12 on 2 cores, docs/remote.md). Nothing is sent there: the caller uses the connection only
    when the validated spec resolves to the very same Remote (`connected(..., early=...)`) and
    closes it otherwise (an invalid spec: nothing was probed). None when the file does not say
    (unreadable, not YAML, no usable `host`) or names this machine; the validated spec decides
    then, as before.
    """
    remote = named_remote(spec_path, reach, host_check)
    return None if remote is None else RemoteHost(remote)


def named_remote(spec_path: Path, reach: Reach, host_check: bool) -> Remote | None:
    """The Remote the spec file names, read from it unvalidated (early_connection): None when
    it does not say or names this machine."""
    from reconciler.bounded import InputRefused, read_bounded
    from reconciler.spec import SpecInvalid
    from reconciler.spec.limits import MAX_BYTES
    from reconciler.spec.loader import build_host
    from reconciler.spec.yaml_source import read_document

    if str(spec_path) == "-" or reach.target == LOCAL:
        return None
    try:
        data = read_document(read_bounded(spec_path, MAX_BYTES), str(spec_path))[0].data
        # Unvalidated data: whatever build_host trips on means "cannot tell" here; the spec
        # loader reports it properly next.
        remote = resolve_host(build_host(data["host"]), reach, host_check=host_check)
    except (SpecInvalid, InputRefused, OSError, Failed):
        return None
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    return remote


def spec_bytes(spec: Spec) -> bytes:
    """The exact bytes of the validated spec, re-read and checked against its hash."""
    import hashlib

    from reconciler.bounded import read_bounded
    from reconciler.spec.limits import MAX_BYTES

    if spec.path is None:
        raise Failed("a spec from standard input cannot be sent to a remote host; name a file")
    try:  # read as the spec was (bounded.py: a link swapped in since is followed no further)
        data = read_bounded(spec.path, MAX_BYTES)
    except OSError as exc:
        raise Failed(f"{spec.path}: cannot read the spec again: {exc.strerror or exc}") from None
    if hashlib.sha256(data).hexdigest() != spec.sha256:
        raise Failed(f"{spec.path} changed while it was being read; run the command again")
    return data


class RemoteHost:
    """One run's connection to a remote host (one multiplexed SSH connection, closed at exit)."""

    def __init__(self, remote: Remote, notes: Callable[[str], None] | None = None) -> None:
        from reconciler.remote.client import RemoteReconciler
        from reconciler.shell.ssh import SshSession

        self.remote = remote
        self.notes = notes  # where what the target says besides a snapshot goes (stderr)
        self.session = SshSession(remote.ssh, options=remote.options, persist_s=remote.persist_s)
        self.client: RemoteReconciler = RemoteReconciler(self.session, python=remote.python)
        self.workdir = Path(tempfile.mkdtemp(prefix="reconciler-remote-"))
        self.session.start()  # the handshake runs while the request is made

    def close(self) -> None:
        self.session.close()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def call(
        self,
        argv: list[str],
        spec: Spec,
        *,
        files: dict[str, bytes] | None = None,
        want: tuple[str, ...] = (),
        spec_name: str = SPEC_FILE,
        on_output: Callable[[bytes], None] = lambda line: None,
        finish_if_lost: bool = False,
        install_for_timer: bool = False,
    ) -> AgentResult:
        """Run `reconciler ARGV` there with the spec (as `spec_name`, relative to the command's
        folder there); `finish_if_lost`, `install_for_timer`: RemoteReconciler.call."""
        from reconciler.shell.ssh import SshError

        sent = {spec_name: spec_bytes(spec), **(files or {})}
        try:
            return self.client.call(
                argv,
                files=sent,
                want=want,
                validated=[spec_name],
                on_output=on_output,
                finish_if_lost=finish_if_lost,
                install_for_timer=spec_name if install_for_timer else None,
            )
        except SshError as exc:
            raise Unreachable(str(exc)) from None

    def snapshot(self, spec: Spec, host_check: bool) -> Path:
        """Probe the host for `spec` there (one call); the snapshot, as a local file."""
        from reconciler.remote.client import file_arg

        argv = ["probe", file_arg(SPEC_FILE), "--out", file_arg(SNAPSHOT_FILE)]
        result = self.call(
            [*argv, f"--host-check={'on' if host_check else 'off'}"], spec, want=(SNAPSHOT_FILE,)
        )
        if result.exit_code != 0 or SNAPSHOT_FILE not in result.files:
            why = _last_lines(result.stderr)
            raise Failed(f"{self.remote.label}: probing failed: {why}", result.exit_code or 1)
        if self.notes is not None:  # e.g. the agent telling an admin which sudo rule it lacks
            for line in result.stderr.splitlines():
                if line.strip():
                    self.notes(line)
        path = self.workdir / SNAPSHOT_FILE
        path.write_bytes(result.files[SNAPSHOT_FILE])
        return path


@contextlib.contextmanager
def connected(
    remote: Remote,
    notes: Callable[[str], None] | None = None,
    early: RemoteHost | None = None,
) -> Iterator[RemoteHost]:
    """One connection to `remote` for the length of the block; `notes`: RemoteHost.notes.
    `early` (early_connection's): used when it is to this same `remote`, else closed."""
    if early is not None and early.remote == remote:
        host, early.notes = early, notes
    else:
        if early is not None:
            early.close()
        host = RemoteHost(remote, notes)
    try:
        yield host
    finally:
        host.close()


def _last_lines(stderr: str, n: int = 3) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    return " / ".join(lines[-n:]) or "no message"


def plan_remote(
    connection: RemoteHost, spec: Spec, host_check: bool
) -> tuple[HostContext, ReadOnlyRunner, Probed, SnapshotSource]:
    """Probe over SSH, plan here: the same plan `plan` makes on the host, named by its target."""
    import importlib
    import threading

    from reconciler.app.review import ReviewError, plan_against
    from reconciler.remote.zipapp import build_agent

    # The kinds (a fifth of this side's start-up) are imported while we wait for the host: the
    # wait is on a pipe, so the interpreter is free; the import below then finds them loaded
    # (or waits for that same import to finish: Python's import lock). The agent is built
    # first, so that this thread imports nothing more until the host answers (no two threads
    # importing the same modules in opposite orders).
    build_agent()
    threading.Thread(
        target=importlib.import_module, args=("reconciler.kinds",), daemon=True
    ).start()
    path = connection.snapshot(spec, host_check)
    from reconciler.kinds import all_kinds

    try:
        host, runner, probed, source = plan_against(spec, path, all_kinds(), host_check=host_check)
    except ReviewError as exc:
        raise Failed(str(exc)) from None
    return host, runner, probed, replace(source, path=connection.remote.label)


def saved_plan_bytes(
    spec: Spec, host: HostContext, runner: ReadOnlyRunner, probed: Probed, source: SnapshotSource
) -> bytes:
    """The reviewed plan as `plan --out` saves it, naming the spec as the target will see it."""
    from reconciler.app.review import ReviewError, saved_plan_text
    from reconciler.render.plan_context import plan_context

    if probed.plan.errors:
        raise Failed("the plan has errors; nothing was changed")
    there = replace(spec, path=Path(SPEC_FILE))
    try:
        text = saved_plan_text(
            probed.plan, plan_context(there, host, probed.probed_at, source), runner
        )
    except ReviewError as exc:
        raise Failed(str(exc)) from None
    return text.encode()


def apply_saved_remote(
    ctx: AppContext,
    connection: RemoteHost,
    spec: Spec,
    plan: bytes,
    host_check: bool,
    spec_name: str = SPEC_FILE,
) -> AgentResult:
    """Run a reviewed plan there (one call, under the target's lock); stream its progress."""
    from reconciler.remote.client import file_arg

    argv = ["apply", file_arg(PLAN_FILE), f"--host-check={'on' if host_check else 'off'}"]
    result = connection.call(
        [*argv, "--no-color"],
        spec,
        files={PLAN_FILE: plan},
        spec_name=spec_name,
        on_output=lambda line: ctx.echo(line.decode(errors="replace").rstrip("\n")),
        finish_if_lost=True,  # the reviewed steps run to the end, with or without us
        install_for_timer=True,  # what the planned timer unit names must exist there
    )
    for line in result.stderr.splitlines():
        ctx.error(line)
    return result


def run_there(
    ctx: AppContext,
    remote: Remote,
    spec: Spec,
    argv: list[str],
    *,
    changes_host: bool = False,
    installs_timer: bool = False,
) -> int:
    """Run a command there as it is (its spec argument being `file_arg(SPEC_FILE)`, or appended
    when argv has none), its output streamed back. `changes_host`: it finishes there if we go
    away; `installs_timer`: what the timer runs is installed first (an `update` is an apply)."""
    from reconciler.remote.client import file_arg

    if file_arg(SPEC_FILE) not in argv:
        argv = [*argv, file_arg(SPEC_FILE)]
    with connected(remote) as connection:
        result = connection.call(
            argv,
            spec,
            on_output=lambda line: ctx.echo(line.decode(errors="replace").rstrip("\n")),
            finish_if_lost=changes_host,
            install_for_timer=installs_timer,
        )
    for line in result.stderr.splitlines():
        ctx.error(line)
    return result.exit_code


def command_there(
    ctx: AppContext,
    spec_path: Path,
    reach: Reach,
    argv: list[str],
    *,
    host_check: bool = True,
    changes_host: bool = False,
    installs_timer: bool = False,
) -> int | None:
    """Run the day-2 command `argv` on the spec's host when it is remote (`--target`,
    `host.ssh`): its exit code; None when the host is this machine (run it here)."""
    found = remote_for_path(ctx, spec_path, reach, host_check)
    if found is None:
        return None
    spec, remote = found
    return run_there(
        ctx, remote, spec, argv, changes_host=changes_host, installs_timer=installs_timer
    )


def remote_for_path(
    ctx: AppContext, spec_path: Path, reach: Reach, host_check: bool = True
) -> tuple[Spec, Remote] | None:
    """The spec and its remote host when a command on `spec_path` goes over SSH; an invalid
    spec stays local (the local command reports it) unless --target asked for a host."""
    from reconciler.app.specs import load, read_spec
    from reconciler.spec import SpecInvalid

    if reach.target == LOCAL:
        return None
    try:
        spec = read_spec(ctx, spec_path)
    except (SpecInvalid, OSError):
        if reach.target is None:
            return None
        spec = load(ctx, spec_path)  # prints every error, then fails
    remote = resolve(spec, reach, host_check=host_check)
    return None if remote is None else (spec, remote)

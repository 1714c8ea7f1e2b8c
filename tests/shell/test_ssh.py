"""The SSH transport against a real sshd: quoting, one connection per run, host key refusals."""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sshd import RunningSshd

from reconciler.shell.ssh import (
    STDERR_KEEP,
    RemoteResult,
    SshError,
    SshSession,
    SshTarget,
    explain_failure,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ssh://vm102", SshTarget("vm102")),
        ("ssh://admin@vm102", SshTarget("vm102", "admin")),
        ("ssh://admin@vm102:2222", SshTarget("vm102", "admin", 2222)),
        ("ssh://10.0.0.5:22", SshTarget("10.0.0.5", None, 22)),
    ],
)
def test_targets_parse(text: str, expected: SshTarget) -> None:
    assert SshTarget.parse(text) == expected
    assert SshTarget.parse(str(expected)) == expected


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("vm102", "write ssh://[user@]host[:port]"),
        ("ssh://vm102/etc", "no path"),
        ("ssh://a:b@vm102", "no path, password"),
        ("ssh://vm102:99999", "port must be a number"),
        ("ssh://vm102:x", "port must be a number"),
        ("ssh://", "missing or invalid host"),
        ("ssh://-oProxyCommand=x", "missing or invalid host"),
        ("ssh://-l@vm102", "invalid user name"),
        # Port 0 was taken, then dropped (`if port:`): ssh went to port 22 without a word.
        ("ssh://vm102:0", "port must be a number from 1 to 65535"),
        ("ssh://vm102:00", "port must be a number from 1 to 65535"),
        ("ssh://vm102:65536", "port must be a number from 1 to 65535"),
        ("ssh://vm102:-22", "port must be a number from 1 to 65535"),
        ("ssh://:22", "missing or invalid host"),
        ("ssh://-vm102", "missing or invalid host"),  # a host ssh would read as an option
        ("ssh://vm102;reboot", "missing or invalid host"),
        ("ssh://vm102$(id)", "missing or invalid host"),
        ("ssh://vm%20102", "missing or invalid host"),
        ("ssh://@vm102", "invalid user name ''"),
        ("ssh://a;b@vm102", "invalid user name"),
    ],
)
def test_bad_targets_say_what_is_wrong(text: str, says: str) -> None:
    with pytest.raises(ValueError) as caught:
        SshTarget.parse(text)
    assert says in str(caught.value)


def test_the_host_is_never_read_as_an_option() -> None:
    argv = SshSession(SshTarget("vm102", "admin", 2222)).command_argv(["true"])
    assert argv[-3:] == ["--", "vm102", "true"]
    assert "StrictHostKeyChecking=no" not in " ".join(argv)
    assert "BatchMode=yes" in argv


@pytest.mark.parametrize(
    ("stderr", "says"),
    [
        ("@@@ WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED! @@@\n...", "CHANGED"),
        ("No ED25519 host key is known for x.\nHost key verification failed.", "not known"),
        ("root@x: Permission denied (publickey).", "refused our credentials"),
        ("ssh: connect to host x port 22: Connection refused", "connection refused"),
        ("ssh: Could not resolve hostname nope: Name or service not known", "does not resolve"),
        ("something new", "ssh failed: something new"),
        ("", "the connection was lost"),
    ],
)
def test_failures_are_explained(stderr: str, says: str) -> None:
    assert says in explain_failure(SshTarget("x"), stderr)


@pytest.mark.parametrize(
    ("target", "name", "login"),
    [
        (SshTarget("vm102", "admin"), "vm102", "ssh admin@vm102"),
        (SshTarget("vm102", "admin", 22), "vm102", "ssh -p 22 admin@vm102"),
        (SshTarget("10.0.0.5", None, 2222), "[10.0.0.5]:2222", "ssh -p 2222 10.0.0.5"),
    ],
)
def test_the_key_fix_names_what_known_hosts_really_holds(
    target: SshTarget, name: str, login: str
) -> None:
    """known_hosts is keyed by host name or IP ([host]:port off 22), never by ssh://user@host."""
    unknown = explain_failure(target, "Host key verification failed.")
    assert f"`{login}`" in unknown and f"under the name {name}" in unknown
    changed = explain_failure(target, "@ WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED! @")
    assert changed.endswith(f"`ssh-keygen -R {name}`") or f"`ssh-keygen -R '{name}'`" in changed
    assert "ssh://" not in changed.split("with")[-1]


def test_argv_reaches_the_remote_program_unchanged(sshd: RunningSshd) -> None:
    tricky = ["a b", "'q'", '"dq"', "$HOME", "; rm -rf /", "`id`", "*", "", "ä\\n"]
    with SshSession(SshTarget.parse(sshd.url), options=sshd.client_options) as session:
        result = session.run(
            ["python3", "-c", "import sys, json; print(json.dumps(sys.argv[1:]))", *tricky]
        )
    assert result.exit_code == 0, result.stderr
    import json

    assert json.loads(result.stdout) == tricky


def test_one_connection_serves_every_call_and_is_closed(sshd: RunningSshd) -> None:
    session = SshSession(SshTarget.parse(sshd.url), options=sshd.client_options)
    for _ in range(4):
        assert session.run(["true"]).exit_code == 0
    control_dir = session._control_dir
    assert control_dir is not None and Path(control_dir).stat().st_mode & 0o077 == 0
    session.close()
    assert not Path(control_dir).exists()
    assert sshd.connections() == 1
    assert sshd.sessions() == 4


def test_connecting_early_is_the_same_one_connection(sshd: RunningSshd) -> None:
    """start() begins the handshake without waiting; the first command rides on it."""
    with SshSession(SshTarget.parse(sshd.url), options=sshd.client_options) as session:
        session.start()
        session.start()  # already connecting: nothing more
        deadline = time.monotonic() + 10
        while not sshd.connections() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert sshd.connections() == 1 and sshd.sessions() == 0  # connected before any command
        assert session.run(["true"]).exit_code == 0
        assert session.run(["true"]).exit_code == 0
    assert sshd.connections() == 1 and sshd.sessions() == 2


def test_an_early_connection_that_failed_is_the_first_commands_error(sshd: RunningSshd) -> None:
    (sshd.root / "known_hosts").write_text("")
    with SshSession(SshTarget.parse(sshd.url), options=sshd.client_options) as session:
        session.start()
        with pytest.raises(SshError, match="not known"):
            session.run(["true"])
        # the next command tries again (and is refused again), it does not reuse a dead master
        with pytest.raises(SshError, match="not known"):
            session.run(["true"])
    assert sshd.sessions() == 0


def test_remote_exit_codes_are_the_commands_own(sshd: RunningSshd) -> None:
    with SshSession(SshTarget.parse(sshd.url), options=sshd.client_options) as session:
        assert session.run(["sh", "-c", "exit 7"]).exit_code == 7


def test_a_changed_host_key_is_refused(sshd: RunningSshd, tmp_path: Path) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "other")], check=True
    )
    sshd.set_known_host_key(tmp_path / "other.pub")
    with (
        SshSession(SshTarget.parse(sshd.url), options=sshd.client_options) as session,
        pytest.raises(SshError, match="CHANGED") as refused,
    ):
        session.run(["true"])
    assert sshd.sessions() == 0
    # OpenSSH's own fix, with the file and the entry that really match; it works.
    fix = str(refused.value).rsplit("`", 2)[-2]
    assert fix.startswith("ssh-keygen -f ") and f'-R "[127.0.0.1]:{sshd.port}"' in fix
    subprocess.run(shlex.split(fix), check=True, capture_output=True)
    assert (sshd.root / "known_hosts").read_text().strip() == ""


def test_an_unknown_host_key_is_refused_not_accepted(sshd: RunningSshd) -> None:
    (sshd.root / "known_hosts").write_text("")
    with (
        SshSession(SshTarget.parse(sshd.url), options=sshd.client_options) as session,
        pytest.raises(SshError, match="not known"),
    ):
        session.run(["true"])
    assert (sshd.root / "known_hosts").read_text() == ""  # nothing was learnt silently


def test_an_unreachable_host_is_an_error(sshd: RunningSshd) -> None:
    sshd.stop()
    with (
        SshSession(SshTarget.parse(sshd.url), options=sshd.client_options) as session,
        pytest.raises(SshError, match="connection refused"),
    ):
        session.run(["true"])


def test_a_target_that_floods_stderr_cannot_block_us(sshd: RunningSshd) -> None:
    """2 MB on stderr before any stdout: a pipe read only at the end would fill and hang both."""
    flood = "head -c 2000000 /dev/zero | tr '\\0' x >&2; echo done"
    with SshSession(SshTarget.parse(sshd.url), options=sshd.client_options) as session:
        *lines, result = session.stream(["sh", "-c", flood], idle_timeout_s=60)
    assert lines == [b"done\n"] and isinstance(result, RemoteResult) and result.exit_code == 0
    assert result.stderr == b"x" * STDERR_KEEP  # its end is kept, bounded


def test_a_silent_target_is_given_up_on_and_the_command_ended(sshd: RunningSshd) -> None:
    start = time.monotonic()
    with (
        SshSession(SshTarget.parse(sshd.url), options=sshd.client_options) as session,
        pytest.raises(SshError, match=r"no answer for 2 s"),
    ):
        list(session.stream(["sleep", "30"], idle_timeout_s=2))
    assert time.monotonic() - start < 15


KILLED_CLIENT = """
import sys
import tempfile
from reconciler.shell.ssh import SshSession, SshTarget
session = SshSession(SshTarget.parse(sys.argv[1]), options=sys.argv[2:])
for line in session.stream(["sh", "-c", "while :; do echo still-here-7f3a; sleep 0.2; done"]):
    print(session._control_dir, flush=True)
"""


def _running(needle: str) -> list[str]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if needle in text and "pytest" not in text:
            found.append(text)
    return found


def test_a_client_killed_outright_leaves_no_ssh_and_no_remote_command(sshd: RunningSshd) -> None:
    """kill -9 runs no cleanup: the ssh processes die with their parent (PR_SET_PDEATHSIG); the
    master's end closes the session, and the remote command ends at its next write."""
    client = subprocess.Popen(
        [sys.executable, "-c", KILLED_CLIENT, sshd.url, *sshd.client_options],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert client.stdout is not None
    control_dir = client.stdout.readline().strip()
    assert control_dir and _running(control_dir) and _running("still-here-7f3a")
    client.kill()
    client.wait()
    deadline = time.monotonic() + 15
    while _running(control_dir) or _running("while :; do echo still-here-7f3a"):
        assert time.monotonic() < deadline, _running(control_dir)
        time.sleep(0.2)


@pytest.fixture
def runtime(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private XDG_RUNTIME_DIR with a short path (a socket path holds 108 bytes)."""
    folder = Path(tempfile.mkdtemp(prefix="rt-"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(folder))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def _persisting(sshd: RunningSshd, seconds: int = 30) -> SshSession:
    return SshSession(SshTarget.parse(sshd.url), options=sshd.client_options, persist_s=seconds)


def test_a_persisted_connection_serves_the_next_session_and_then_ends(
    sshd: RunningSshd, runtime: Path
) -> None:
    with _persisting(sshd, seconds=2) as first:
        assert first.run(["true"]).exit_code == 0
        socket_path = first._control_path()
    assert socket_path.startswith(f"{runtime}/reconciler/ssh/")
    assert (runtime / "reconciler" / "ssh").stat().st_mode & 0o777 == 0o700
    with _persisting(sshd, seconds=2) as second:  # the same target and options: no handshake
        assert second.run(["true"]).exit_code == 0
        assert second._master is None  # no ssh -M of its own: it rode on the first one's
    assert sshd.connections() == 1 and sshd.sessions() == 2
    deadline = time.monotonic() + 15  # idle for its 2 s, the master goes, its socket with it
    while Path(socket_path).exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not Path(socket_path).exists()
    with _persisting(sshd, seconds=2) as third:
        assert third.run(["true"]).exit_code == 0
    assert sshd.connections() == 2


def test_a_dead_masters_socket_is_replaced(sshd: RunningSshd, runtime: Path) -> None:
    """A socket file nobody listens on (a reboot under ~/.cache, a killed master)."""
    session = _persisting(sshd)
    path = Path(session._control_path())
    path.parent.mkdir(parents=True, exist_ok=True)
    import socket as sockets

    stale = sockets.socket(sockets.AF_UNIX)
    stale.bind(str(path))
    stale.close()  # bound, never listening: connect() is refused
    with session:
        assert session.run(["true"]).exit_code == 0
    assert sshd.connections() == 1
    subprocess.run(["ssh", "-o", f"ControlPath={path}", "-O", "exit", "x"], capture_output=True)


@pytest.mark.parametrize("mode", [0o777, 0o750])
def test_a_folder_others_can_reach_is_never_used_for_a_persisted_socket(
    sshd: RunningSshd, runtime: Path, mode: int
) -> None:
    (runtime / "reconciler" / "ssh").mkdir(parents=True)
    (runtime / "reconciler" / "ssh").chmod(mode)
    with _persisting(sshd) as session:
        assert session.run(["true"]).exit_code == 0
        private = session._control_dir  # the run's own folder instead, closed with it
    assert private is not None and not Path(private).exists()
    assert list((runtime / "reconciler" / "ssh").iterdir()) == []


KILLED_PERSISTING_CLIENT = """
import sys
from reconciler.shell.ssh import SshSession, SshTarget
session = SshSession(SshTarget.parse(sys.argv[1]), options=sys.argv[2:], persist_s=30)
for line in session.stream(["sh", "-c", "while :; do echo still-here-5c1e; sleep 0.2; done"]):
    print("up", flush=True)
"""


def test_a_killed_client_leaves_no_remote_command_behind_a_persisted_master(
    sshd: RunningSshd, runtime: Path
) -> None:
    """The master outlives the run on purpose; the command it carried does not."""
    client = subprocess.Popen(
        [sys.executable, "-c", KILLED_PERSISTING_CLIENT, sshd.url, *sshd.client_options],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert client.stdout is not None
    assert client.stdout.readline().strip() == "up" and _running("still-here-5c1e")
    client.kill()
    client.wait()
    deadline = time.monotonic() + 15
    while _running("while :; do echo still-here-5c1e"):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    (socket_path,) = (runtime / "reconciler" / "ssh").iterdir()
    subprocess.run(["ssh", "-o", f"ControlPath={socket_path}", "-O", "exit", "x"], check=True)


def test_a_refused_persisted_connection_is_the_commands_error(
    sshd: RunningSshd, runtime: Path
) -> None:
    (sshd.root / "known_hosts").write_text("")
    with _persisting(sshd) as session, pytest.raises(SshError, match="not known"):
        session.run(["true"])
    assert list((runtime / "reconciler" / "ssh").iterdir()) == []


# A quiet streamed command as the agent runs it (logs -f on a quiet gateway): one line, then
# nothing on stdout, only the agent's heartbeat on stderr.
QUIET_AGENT = """
import sys, time
from reconciler import agent
agent.HEARTBEAT_S = 0.5
agent._start_heartbeat(stop_when_lost=True)
print("up", flush=True)
time.sleep(600)  # quiet-agent-7d2e
"""
QUIET_CLIENT = """
import sys
from reconciler.agent import HEARTBEAT
from reconciler.shell.ssh import SshSession, SshTarget
persist, remote = int(sys.argv[1]), sys.argv[2:5]
with SshSession(SshTarget.parse(sys.argv[5]), options=sys.argv[6:], persist_s=persist) as s:
    for line in s.stream(remote, heartbeat=HEARTBEAT):
        print(line.decode().strip(), flush=True)
"""


@pytest.mark.parametrize("persist_s", [0, 30])
def test_ctrl_c_ends_a_quiet_remote_command_with_or_without_a_persisted_master(
    sshd: RunningSshd, runtime: Path, persist_s: int
) -> None:
    """`logs -f` of a quiet gateway, ended with Ctrl-C. Behind a persisted master, OpenSSH closes
    only the session's stdout side when the client goes (stderr, where the heartbeat goes, is
    still read): the agent must notice that too, or journalctl runs on there for ever."""
    repo = str(Path(__file__).resolve().parents[2])
    marker = "quiet-agent-7d2e"  # in the remote command's own argv
    client = subprocess.Popen(
        [
            sys.executable,
            "-c",
            QUIET_CLIENT,
            str(persist_s),
            *(sys.executable, "-c", f"import sys; sys.path.insert(0, {repo!r})\n{QUIET_AGENT}"),
            sshd.url,
            *sshd.client_options,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": repo},
    )
    assert client.stdout is not None
    assert client.stdout.readline().strip() == "up", client.stderr
    assert _running(marker)
    client.send_signal(signal.SIGINT)
    client.wait(timeout=30)
    deadline = time.monotonic() + 15
    while _running(marker):
        assert time.monotonic() < deadline, "the remote command outlived its client"
        time.sleep(0.2)
    for socket_path in (runtime / "reconciler" / "ssh").glob("*"):
        subprocess.run(["ssh", "-o", f"ControlPath={socket_path}", "-O", "exit", "x"], check=True)

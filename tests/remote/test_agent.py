"""Shipping our own code to a target over real SSH: built once, cached by hash, one round trip."""

from __future__ import annotations

import io
import json
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sshd import RunningSshd

from reconciler.remote import zipapp
from reconciler.remote.client import RemoteReconciler, file_arg
from reconciler.remote.zipapp import Agent, build_agent, zip_agent
from reconciler.shell.ssh import SshError, SshSession, SshTarget

REPO = Path(__file__).resolve().parents[2]
SPEC = (REPO / "specs" / "vm102.yaml").read_bytes()


def test_the_agent_is_deterministic_and_pure_python() -> None:
    first = zip_agent()
    assert zip_agent().data == first.data and first is not zip_agent()
    names = zipfile.ZipFile(io.BytesIO(first.data)).namelist()
    assert "__main__.py" in names
    assert "reconciler/schemas/spec.schema.json" in names
    assert not [n for n in names if n.endswith((".so", ".pyc")) or "__pycache__" in n]
    # validation happens on the admin machine: jsonschema (and its compiled helpers) stay here
    assert not [n for n in names if n.startswith(("jsonschema/", "rpds/", "deepdiff/"))]


def test_a_fleets_threads_build_the_agent_once(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[int] = []

    def slow_build() -> Agent:
        built.append(1)
        time.sleep(0.2)  # all the threads ask while the first one builds
        return Agent(b"PK")

    monkeypatch.setattr(zipapp, "_BUILT", {})
    monkeypatch.setattr(zipapp, "_kept_or_zipped", slow_build)
    with ThreadPoolExecutor(4) as pool:
        agents = list(pool.map(lambda _: build_agent(), range(4)))
    assert len(built) == 1 and all(a is agents[0] for a in agents)


def _session(sshd: RunningSshd) -> SshSession:
    return SshSession(SshTarget.parse(sshd.url), options=sshd.client_options)


def _probe(remote: RemoteReconciler) -> tuple[int, dict[str, bytes]]:
    result = remote.call(
        ["probe", file_arg("spec.yaml"), "--out", file_arg("snapshot.json"), "--host-check=off"],
        files={"spec.yaml": SPEC},
        want=["snapshot.json"],
        validated=["spec.yaml"],
    )
    return result.exit_code, dict(result.files)


def test_first_call_ships_the_agent_later_calls_reuse_it(sshd: RunningSshd) -> None:
    agent = build_agent()
    folder = sshd.cache_home / "reconciler" / "agent" / agent.sha256
    cached = folder / "agent.pyz"
    with _session(sshd) as session:
        remote = RemoteReconciler(session)
        code, files = _probe(remote)
        assert code == 0 and remote.round_trips == 2
        assert cached.read_bytes() == agent.data
        assert cached.stat().st_mode & 0o777 == 0o600
        assert (
            folder.stat().st_mode & 0o777 == 0o700 and folder.parent.stat().st_mode & 0o777 == 0o700
        )
        # extracted and byte-compiled: the run imports bytecode, not the zip
        assert list((folder / "reconciler" / "__pycache__").glob("agent.cpython-*.pyc"))
        sessions_after_install = sshd.sessions()
        code, files = _probe(remote)
        assert code == 0 and remote.round_trips == 3
    assert sshd.sessions() == sessions_after_install + 1  # one round trip on a warm target
    assert sshd.connections() == 1
    snapshot = json.loads(files["snapshot.json"])
    assert snapshot["spec"]["sha256"] if "spec" in snapshot else snapshot


def test_a_damaged_cached_agent_is_replaced(sshd: RunningSshd) -> None:
    agent = build_agent()
    with _session(sshd) as session:
        remote = RemoteReconciler(session)
        _probe(remote)
        cached = sshd.cache_home / "reconciler" / "agent" / agent.sha256 / "reconciler" / "cli.py"
        intact = cached.read_bytes()
        cached.write_bytes(intact[:1000])
        code, _ = _probe(remote)
        assert code == 0 and remote.round_trips == 4
        assert cached.read_bytes() == intact


def test_the_commands_output_streams_back_and_its_exit_code_is_kept(sshd: RunningSshd) -> None:
    lines: list[bytes] = []
    with _session(sshd) as session:
        remote = RemoteReconciler(session)
        assert remote.call(["--version"], on_output=lines.append).exit_code == 0
        missing = remote.call(["probe", file_arg("absent.yaml"), "--out", file_arg("s.json")])
    assert b"reconciler, version" in b"".join(lines)
    assert missing.exit_code == 1 and "cannot read the spec" in missing.stderr


def test_an_unvalidated_spec_is_checked_in_full_there(sshd: RunningSshd) -> None:
    """Only specs this side validated skip the schema; anything else is refused, not trusted."""
    with _session(sshd) as session:
        result = RemoteReconciler(session).call(
            ["probe", file_arg("spec.yaml"), "--out", file_arg("s.json")],
            files={"spec.yaml": b"apiVersion: 7\n"},
        )
    assert result.exit_code != 0 and not result.files


def test_a_target_without_the_interpreter_is_named(sshd: RunningSshd) -> None:
    with (
        _session(sshd) as session,
        pytest.raises(SshError, match=r"python3\.99 is not installed there .* 3\.11 or newer"),
    ):
        RemoteReconciler(session, python="python3.99").call(["--version"])

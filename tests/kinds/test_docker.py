"""Docker for the sandbox as data: where docker is and what its daemon answers in, the plan out."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import json5
import pytest

from reconciler.core.action import RunCommand
from reconciler.core.command import Command, CommandResult
from reconciler.core.probe import Probe
from reconciler.kinds.docker import (
    DockerKind,
    DockerProbe,
    DockerStatus,
    UserGroups,
    UserGroupsProbe,
    docker_probe,
)
from reconciler.spec.errors import SpecInvalid
from reconciler.spec.loader import load_spec_text
from reconciler.spec.model import Docker, Profile, Spec
from reconciler.spec.sections.docker.model import Sandbox

from .gateway_host import GatewayHost, gateway_spec
from .helpers import facts, located, make_host, make_spec


def _docker_found(path: str | None) -> dict[Probe[Any], Any]:
    """What discovery found: docker at `path` (None: not installed)."""
    return located(make_host(), docker=path)


def plan(policy: str, *, reachable: bool):  # type: ignore[no-untyped-def]
    spec = make_spec()
    spec = replace(spec, runtime=replace(spec.runtime, docker=Docker(policy)))  # type: ignore[arg-type]
    host = make_host()
    where = _docker_found("/usr/bin/docker")
    status = DockerStatus(reachable, "docker daemon 27" if reachable else "docker: not installed")
    groups = {UserGroupsProbe("user"): UserGroups(("user", "docker"))}
    found = {**where, docker_probe(host, facts(where)): status, **groups}
    return DockerKind().plan(spec, host, facts(found))


def test_required_docker_that_does_not_answer_is_blocked() -> None:
    (action,) = plan("required", reachable=False).actions
    assert action.address == "runtime.docker" and action.blocked
    assert plan("required", reachable=True).actions == ()


def test_absent_docker_that_answers_is_a_warning() -> None:
    result = plan("absent", reachable=True)
    assert result.actions == ()
    (finding,) = result.findings
    assert finding.severity == "warning" and "says absent" in finding.message


@pytest.mark.parametrize("path", ["/usr/bin/docker", None])
def test_optional_docker_asks_no_daemon(path: str | None) -> None:
    """With `optional` no answer of `docker info` changes the plan: the probe is not run."""
    spec, host, where = make_spec(), make_host(), _docker_found(path)
    assert spec.runtime.docker == Docker("optional")
    probes = list(DockerKind().probes(spec, host, facts(where)))
    assert not any(isinstance(p, DockerProbe) for p in probes)
    result = DockerKind().plan(spec, host, facts(where))
    (finding,) = [f for f in result.findings if f.address == "runtime.docker"]
    where_text = "not installed" if path is None else "/usr/bin/docker, its daemon not asked"
    assert finding.message == f"docker: {where_text} (optional)"


@pytest.mark.parametrize("policy", ["required", "absent"])
def test_required_or_absent_docker_asks_the_daemon(policy: str) -> None:
    spec = make_spec()
    spec = replace(spec, runtime=replace(spec.runtime, docker=Docker(policy)))  # type: ignore[arg-type]
    found = facts(_docker_found("/usr/bin/docker"))
    assert DockerProbe("/usr/bin/docker") in list(DockerKind().probes(spec, make_host(), found))


# --- access: the docker group, or the user's rootless daemon ------------------------------------

GROUP = Docker("required", "group")


def required_plan(
    docker: Docker, *, reachable: bool, groups: tuple[str, ...] | None, installed: bool = True
):  # type: ignore[no-untyped-def]
    spec = make_spec()
    spec = replace(spec, runtime=replace(spec.runtime, docker=docker))
    host = make_host()
    where = _docker_found("/usr/bin/docker" if installed else None)
    found = facts(where)
    detail = "docker daemon 27" if reachable else "docker: permission denied"
    values = {
        **where,
        docker_probe(host, found, spec): DockerStatus(reachable, detail),
        UserGroupsProbe("user"): UserGroups(groups, "" if groups else "id: no such user"),
    }
    return DockerKind().plan(spec, host, facts(values))


def test_a_user_outside_the_docker_group_is_added_as_root() -> None:
    result = required_plan(GROUP, reachable=False, groups=("user", "sudo"))
    (action,) = result.actions
    assert action.address == "runtime.docker" and action.blocked is None
    (op,) = action.operations
    assert isinstance(op, RunCommand)
    assert op.command.argv == ("usermod", "-aG", "docker", "user")
    assert op.command.needs_root and op.command.mutating
    (warning,) = result.findings
    assert warning.severity == "warning" and "systemctl restart user@1000.service" in (
        warning.message
    )


def test_a_member_whose_daemon_does_not_answer_is_blocked() -> None:
    (action,) = required_plan(GROUP, reachable=False, groups=("user", "docker")).actions
    assert action.operations == () and action.blocked == "docker: permission denied (for user user)"
    assert required_plan(GROUP, reachable=True, groups=("user", "docker")).actions == ()


def test_docker_not_installed_is_blocked_not_grouped() -> None:
    (action,) = required_plan(GROUP, reachable=False, groups=("user",), installed=False).actions
    assert action.operations == () and action.blocked is not None


def test_the_group_probe_runs_only_for_required_group_access() -> None:
    spec, host = make_spec(), make_host()
    found = facts(_docker_found("/usr/bin/docker"))
    for docker, asked in [
        (GROUP, True),
        (Docker("required", "rootless"), False),
        (Docker("absent"), False),
        (Docker("optional"), False),
    ]:
        probes = list(
            DockerKind().probes(
                replace(spec, runtime=replace(spec.runtime, docker=docker)), host, found
            )
        )
        assert (UserGroupsProbe("user") in probes) is asked, docker


def test_rootless_asks_the_users_own_daemon_and_never_installs_it() -> None:
    rootless = Docker("required", "rootless")
    spec = replace(make_spec(), runtime=replace(make_spec().runtime, docker=rootless))
    probe = docker_probe(make_host(), facts(_docker_found("/usr/bin/docker")), spec)
    command = probe.command(make_host())
    assert command is not None
    assert command.argv[:3] == ("/usr/bin/docker", "--host", "unix:///run/user/1000/docker.sock")
    (action,) = required_plan(rootless, reachable=False, groups=None).actions
    assert action.operations == () and action.blocked is not None
    assert "dockerd-rootless-setuptool.sh install" in action.blocked


def test_id_output_is_parsed_and_a_failure_says_why() -> None:
    ok = CommandResult(Command(("id",)), ("id",), 0, "user adm sudo docker\n")
    assert UserGroupsProbe("user").parse(ok) == UserGroups(("user", "adm", "sudo", "docker"))
    missing = CommandResult(Command(("id",)), ("id",), 1, "", "id: 'nobody2': no such user\n")
    parsed = UserGroupsProbe("nobody2").parse(missing)
    assert parsed.names is None and "no such user" in parsed.detail


# --- the section: a word or a mapping; the sandbox keys of every profile's config ---------------

SPEC = """apiVersion: reconciler/v1
host: {name: vm102, user: user}
profiles: {ops: {port: 18809}}
runtime:
  docker: DOCKER
"""


def test_a_word_or_a_mapping() -> None:
    word = load_spec_text(SPEC.replace("DOCKER", "required"), "w.yaml")
    assert word.runtime.docker == Docker("required")
    mapping = load_spec_text(
        SPEC.replace(
            "DOCKER",
            "{policy: required, access: rootless, sandbox: {mode: non-main, workspace_access: ro}}",
        ),
        "m.yaml",
    )
    assert mapping.runtime.docker == Docker(
        "required", "rootless", Sandbox(mode="non-main", workspace_access="ro")
    )
    assert mapping.runtime.docker.gateway_config() == {
        ("agents", "defaults", "sandbox", "mode"): "non-main",
        ("agents", "defaults", "sandbox", "workspaceAccess"): "ro",
    }
    assert load_spec_text(SPEC.replace("DOCKER", "{}"), "e.yaml").runtime.docker == Docker()


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("maybe", 'runtime.docker: "maybe" is not one of: required, optional, absent'),
        ("{policy: requird}", 'runtime.docker.policy: "requird" is not one of'),
        ("{sandbox: {network: none}}", "runtime.docker.sandbox.network: unknown field"),
        ("{sandbox: {mode: main}}", 'runtime.docker.sandbox.mode: "main" is not one of'),
    ],
)
def test_errors_name_the_field_of_the_shape_written(value: str, error: str) -> None:
    with pytest.raises(SpecInvalid) as raised:
        load_spec_text(SPEC.replace("DOCKER", value), "bad.yaml")
    assert any(error in str(e) for e in raised.value.errors), raised.value.errors


# --- on the fake host: the real engine, the fake `id`, `usermod`, `docker` ------------------------


def _sandboxed(gw: GatewayHost) -> Spec:
    docker = Docker("required", "group", Sandbox(mode="non-main", workspace_access="ro"))
    spec = gateway_spec(Profile("ops", 18809))
    return replace(spec, runtime=replace(spec.runtime, docker=docker))


def test_fake_host_adds_the_user_to_docker_and_writes_the_sandbox(tmp_path: Path) -> None:
    gw = GatewayHost(tmp_path)
    gw.fake.set_docker(in_group=False)
    spec = _sandboxed(gw)
    plan = gw.plan(spec)
    (action,) = [a for a in plan.actions if a.address == "runtime.docker"]
    assert action.blocked is None and action.operations
    assert any("systemctl restart user@" in f.message for f in plan.findings)

    gw.converge(spec)
    usermod = [c for c in gw.fake.mutating_calls() if c["tool"] == "usermod"]
    assert [c["argv"][1:] for c in usermod] == [["-aG", "docker", "user"]]
    assert usermod[0]["caller"] == "root"  # through sudo -n, as the user planned it
    config = json5.loads((gw.home / ".clawdbot-ops" / "clawdbot.json").read_text())
    assert config["agents"] == {
        "defaults": {"sandbox": {"mode": "non-main", "workspaceAccess": "ro"}}
    }
    assert "docker" in gw.fake.run("id", "-nG", "user").stdout.split()

    gw.fake.clear_calls()
    again = gw.plan(spec)
    assert "runtime.docker" not in [a.address for a in again.runnable]
    assert gw.fake.mutating_calls() == []


def test_fake_host_refused_sudo_blocks_with_the_sudoers_rule(tmp_path: Path) -> None:
    gw = GatewayHost(tmp_path)
    gw.fake.set_docker(in_group=False)
    gw.fake.allow_sudo(False)
    (action,) = [a for a in gw.plan(_sandboxed(gw)).actions if a.address == "runtime.docker"]
    assert action.blocked is not None
    assert "NOPASSWD:" in action.blocked and "usermod -aG docker user" in action.blocked


def test_fake_host_rootless_daemon(tmp_path: Path) -> None:
    gw = GatewayHost(tmp_path)
    gw.fake.set_docker(in_group=False, rootless=False)
    spec = gateway_spec(Profile("ops", 18809))
    spec = replace(spec, runtime=replace(spec.runtime, docker=Docker("required", "rootless")))
    (action,) = [a for a in gw.plan(spec).actions if a.address == "runtime.docker"]
    assert (
        action.blocked is not None
        and "Cannot connect to the Docker daemon at unix:///run/user/" in (action.blocked)
    )
    gw.fake.set_docker(rootless=True)
    assert "runtime.docker" not in [a.address for a in gw.plan(spec).actions]


# --- the real gateway's own config validation accepts what the config kind writes --------------

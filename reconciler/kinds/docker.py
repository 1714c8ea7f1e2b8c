"""Docker for the gateway's sandbox: the spec's user reaches a docker daemon, and every
profile's gateway runs its tools' sandbox as the spec says.

Wants: `runtime.docker` (reconciler/spec/sections/docker/): the policy (required | optional |
absent), the access (`group`: the user is a member of the `docker` group; `rootless`: the
user's own daemon at /run/user/<uid>/docker.sock) and the sandbox settings, which the gateway
config kind writes into every profile's config (`agents.defaults.sandbox.mode`, `.scope`,
`.workspaceAccess`: keys of the gateway's own strict config schema, through
`reconciler.spec.sections.gateway_config`).
Probes: where `docker` is on the user's PATH (discovery); only when the spec requires docker or
wants it absent (`optional` needs no answer, so the daemon, the slowest probe of a plan on a
host with docker, is not asked): `docker info` as the user (`--host` the rootless socket with
`access: rootless`) and, with `access: group`, the user's groups (`id -nG USER`).
Fixes: a user who is not in the `docker` group while docker is installed and required:
`usermod -aG docker USER` as root (through `sudo -n`, or blocked with the sudoers rule that
would allow it). A process keeps the groups it started with: the gateways get the group when
the user's systemd manager next starts, which a warning says. Docker itself and a rootless
daemon are never installed: unreachable required docker is a blocked step with the reason (and,
rootless, the user's setup command); docker answering while the spec says absent is a warning.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

from reconciler.core.action import Action, Finding, KindPlan, RunCommand
from reconciler.core.command import Command, CommandResult
from reconciler.core.diff import attribute_changes
from reconciler.core.host import HostContext
from reconciler.core.kind import NO_FACTS, Kind, register
from reconciler.core.probe import Facts, Probe
from reconciler.facts.codec import RecordedHost, Wanted, recorded, records
from reconciler.frozen import frozen
from reconciler.gateway.addresses import DOCKER
from reconciler.kinds._programs import location_probe
from reconciler.spec.model import Spec

__all__ = ["DOCKER", "DockerKind", "DockerProbe", "DockerStatus", "UserGroupsProbe"]


def docker_probe(host: HostContext, found: Facts, spec: Spec | None = None) -> DockerProbe:
    """`docker info` at the path discovery found for the user (at the user's rootless socket
    when the spec says `access: rootless`)."""
    path = found.get(location_probe("docker", host)).path
    if spec is not None and spec.runtime.docker.access == "rootless":
        return DockerProbe(path, rootless_socket(host))
    return DockerProbe(path)


def rootless_socket(host: HostContext) -> str:
    """Where the user's rootless daemon listens (`dockerd-rootless.sh`: $XDG_RUNTIME_DIR)."""
    uid = host.user.uid if host.user is not None else "UID"
    return f"unix:///run/user/{uid}/docker.sock"


@recorded
@frozen
class DockerStatus:
    reachable: bool
    detail: str


@recorded
@frozen
class DockerProbe(Probe[DockerStatus]):
    """`docker info` as the spec's user, with a short timeout (a hung daemon must not stall us)."""

    path: str | None
    socket: str | None = None  # None: docker's default (the system daemon)

    def command(self, host: HostContext) -> Command | None:
        if self.path is None:
            return None
        where = ("--host", self.socket) if self.socket else ()
        return Command(
            (self.path, *where, "info", "--format", "{{json .ServerVersion}}"),
            scope="user",
            timeout_s=5,
        )

    def read(self, host: HostContext) -> DockerStatus:
        return DockerStatus(False, "docker: not installed")

    def parse(self, result: CommandResult) -> DockerStatus:
        if result.ok:
            return DockerStatus(True, f"docker daemon {result.stdout.strip().strip(chr(34))}")
        return DockerStatus(False, f"docker: {result.summary()}")

    def answer_from(self, recorded: RecordedHost) -> DockerStatus | None:
        # "Not installed" needs no command and reads nothing: the same answer anywhere.
        return self.read(recorded.host) if self.path is None else None


@recorded
@frozen
class UserGroups:
    """The groups a user is in, as a new login would get them (None: the lookup failed)."""

    names: tuple[str, ...] | None
    detail: str = ""


@recorded
@frozen
class UserGroupsProbe(Probe[UserGroups]):
    """`id -nG USER`: the user's group names, space-separated (the groups database, not the
    groups of a running process)."""

    user: str

    def command(self, host: HostContext) -> Command | None:
        return Command(("id", "-nG", self.user), timeout_s=5)

    def read(self, host: HostContext) -> UserGroups:
        return UserGroups(None, "id: not run")

    def parse(self, result: CommandResult) -> UserGroups:
        if result.ok:
            return UserGroups(tuple(result.stdout.split()))
        return UserGroups(None, f"id: {result.summary()}")


@records
def _programs(spec: Spec, host: HostContext) -> Wanted:
    """Where docker is, whatever this spec asks (a later spec may require it)."""
    return Wanted(programs=("docker",))


@register(11)
class DockerKind(Kind):
    name = "runtime.docker"

    def desired(self, spec: Spec, home: Path) -> Mapping[str, Any]:
        """The docker policy, how the user reaches docker, the sandbox settings."""
        docker = spec.runtime.docker
        return {
            "runtime": {
                "docker": {
                    "policy": docker.policy,
                    "access": docker.access,
                    "sandbox": asdict(docker.sandbox),
                }
            }
        }

    def discover(self, spec: Spec, host: HostContext) -> Iterable[Probe[Any]]:
        yield location_probe("docker", host)

    def probes(
        self, spec: Spec, host: HostContext, found: Facts = NO_FACTS
    ) -> Iterable[Probe[Any]]:
        docker = spec.runtime.docker
        if docker.policy != "optional":
            # With `optional` no answer changes the plan, so the daemon is not asked.
            yield docker_probe(host, found, spec)
            if docker.policy == "required" and docker.access == "group":
                yield UserGroupsProbe(spec.host.user)

    def plan(self, spec: Spec, host: HostContext, facts: Facts) -> KindPlan:
        policy = spec.runtime.docker.policy
        if policy == "optional":
            path = facts.get(location_probe("docker", host)).path
            where = "not installed" if path is None else f"{path}, its daemon not asked"
            return KindPlan(findings=(Finding(DOCKER, f"docker: {where} ({policy})"),))
        docker = facts.get(docker_probe(host, facts, spec))
        if policy == "required" and not docker.reachable:
            return _unreachable(spec, host, facts, docker)
        if policy == "absent" and docker.reachable:
            return KindPlan(
                findings=(
                    Finding(
                        DOCKER,
                        f"docker answers for {spec.host.user} but the spec says absent",
                        "warning",
                    ),
                )
            )
        return KindPlan(findings=(Finding(DOCKER, f"{docker.detail} ({policy})"),))


def _unreachable(spec: Spec, host: HostContext, facts: Facts, docker: DockerStatus) -> KindPlan:
    """Required docker that does not answer the user: add the user to the `docker` group when
    that is what is missing, else a blocked step saying why."""
    user = spec.host.user
    why = "runtime.docker is required (the gateway's sandbox runtime)"
    installed = facts.get(location_probe("docker", host)).path is not None
    if spec.runtime.docker.access == "rootless":
        setup = (
            f"set up the rootless daemon as {user} (dockerd-rootless-setuptool.sh install, then "
            "systemctl --user enable --now docker); the reconciler never installs docker"
        )
        return KindPlan(
            actions=(Action(DOCKER, "verify", why, blocked=f"{docker.detail} ({setup})"),)
        )
    groups = facts.get(UserGroupsProbe(user))
    if not installed or groups.names is None or "docker" in groups.names:
        detail = docker.detail if groups.names is not None or not installed else groups.detail
        return KindPlan(
            actions=(Action(DOCKER, "verify", why, blocked=f"{detail} (for user {user})"),)
        )
    command = Command(("usermod", "-aG", "docker", user), needs_root=True, mutating=True)
    return KindPlan(
        actions=(
            Action(
                DOCKER,
                "update",
                f"{why}: {user} reaches it as a member of the docker group",
                (RunCommand(command),),
                changes=attribute_changes({"docker group": True}, {"docker group": False}),
            ),
        ),
        findings=(
            Finding(
                DOCKER,
                f"a process keeps the groups it started with: {user}'s gateways reach docker "
                f"once {user}'s systemd manager starts again (a reboot, or as root: systemctl "
                f"restart user@{host.user.uid if host.user else 'UID'}.service)",
                "warning",
            ),
        ),
    )

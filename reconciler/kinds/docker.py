"""Docker for the gateway's sandbox: whether the spec's user reaches a docker daemon.

Wants: `runtime.docker` (reconciler/spec/sections/docker/): required | optional | absent.
Probes: where `docker` is on the user's PATH (discovery), and `docker info` as the user, only when
the spec requires docker or wants it absent (`optional` needs no answer, so the daemon, the
slowest probe of a plan on a host with docker, is not asked).
Fixes: nothing is installed; unreachable required docker is a blocked step with the reason,
docker answering while the spec says absent is a warning.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler.core.action import Action, Finding, KindPlan
from reconciler.core.command import Command, CommandResult
from reconciler.core.host import HostContext
from reconciler.core.kind import NO_FACTS, Kind, register
from reconciler.core.probe import Facts, Probe
from reconciler.facts.codec import RecordedHost, Wanted, recorded, records
from reconciler.gateway.addresses import DOCKER
from reconciler.kinds._programs import location_probe
from reconciler.spec.model import Spec

__all__ = ["DOCKER", "DockerKind", "DockerProbe", "DockerStatus"]


def docker_probe(host: HostContext, found: Facts) -> DockerProbe:
    """`docker info` at the path discovery found for the user."""
    return DockerProbe(found.get(location_probe("docker", host)).path)


@recorded
@dataclass(frozen=True)
class DockerStatus:
    reachable: bool
    detail: str


@recorded
@dataclass(frozen=True)
class DockerProbe(Probe[DockerStatus]):
    """`docker info` as the spec's user, with a short timeout (a hung daemon must not stall us)."""

    path: str | None

    def command(self, host: HostContext) -> Command | None:
        if self.path is None:
            return None
        return Command(
            (self.path, "info", "--format", "{{json .ServerVersion}}"), scope="user", timeout_s=5
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


@records
def _programs(spec: Spec, host: HostContext) -> Wanted:
    """Where docker is, whatever this spec asks (a later spec may require it)."""
    return Wanted(programs=("docker",))


@register(11)
class DockerKind(Kind):
    name = "runtime.docker"

    def desired(self, spec: Spec, home: Path) -> Mapping[str, Any]:
        """The docker policy."""
        return {"runtime": {"docker": spec.runtime.docker.policy}}

    def discover(self, spec: Spec, host: HostContext) -> Iterable[Probe[Any]]:
        yield location_probe("docker", host)

    def probes(
        self, spec: Spec, host: HostContext, found: Facts = NO_FACTS
    ) -> Iterable[Probe[Any]]:
        if spec.runtime.docker.policy != "optional":
            # With `optional` no answer changes the plan, so the daemon is not asked.
            yield docker_probe(host, found)

    def plan(self, spec: Spec, host: HostContext, facts: Facts) -> KindPlan:
        policy = spec.runtime.docker.policy
        if policy == "optional":
            path = facts.get(location_probe("docker", host)).path
            where = "not installed" if path is None else f"{path}, its daemon not asked"
            return KindPlan(findings=(Finding(DOCKER, f"docker: {where} ({policy})"),))
        docker = facts.get(docker_probe(host, facts))
        if policy == "required" and not docker.reachable:
            return KindPlan(
                actions=(
                    Action(
                        DOCKER,
                        "verify",
                        "runtime.docker is required (the gateway's sandbox runtime)",
                        blocked=f"{docker.detail} (for user {spec.host.user})",
                    ),
                )
            )
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

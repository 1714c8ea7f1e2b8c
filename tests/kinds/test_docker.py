"""Docker for the sandbox as data: where docker is and what its daemon answers in, the plan out."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from reconciler.core.probe import Probe
from reconciler.kinds.docker import DockerKind, DockerProbe, DockerStatus, docker_probe
from reconciler.spec.model import Docker

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
    return DockerKind().plan(spec, host, facts({**where, docker_probe(host, facts(where)): status}))


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

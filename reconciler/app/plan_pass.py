"""One probe-and-plan pass: ask every kind for its probes, run them once, plan from the facts."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from reconciler.core.host import HostContext
from reconciler.core.kind import ResourceKind, unmet_need
from reconciler.core.plan import Plan, build_plan
from reconciler.core.probe import Facts, Probe, ProbeFailed, ProbeSession
from reconciler.facts.sudo_check import block_refused, root_commands, sudo_probes
from reconciler.frozen import frozen
from reconciler.shell.runner import ReadOnlyRunner
from reconciler.spec.model import Spec


class HostMismatch(Exception):
    """The spec is for another machine."""


def check_host(spec: Spec, host: HostContext) -> None:
    """Refuse to plan a spec written for another machine (the short hostname must match)."""
    actual = host.hostname.split(".")[0]
    if spec.host.name.split(".")[0] != actual:
        raise HostMismatch(
            f"{spec.path or 'the spec'} is for host {spec.host.name!r} but this machine is "
            f"{host.hostname!r}; run it on {spec.host.name}, or pass --host-check=off "
            "(containers, tests)"
        )


@frozen
class Probed:
    """A plan and the facts it was made from, with the time they were read."""

    plan: Plan
    facts: Facts
    probed_at: str


Collect = Callable[[Iterable[Probe[Any]]], Facts]


def _declared(kind: ResourceKind, spec: Spec, host: HostContext, found: Facts) -> list[Probe[Any]]:
    """A kind's probes; none when a discovery it depends on failed (its plan then reports it),
    or when one of its needs is not met (it is not asked to plan either)."""
    if unmet_need(kind, host) is not None:
        return []
    try:
        return list(kind.probes(spec, host, found))
    except ProbeFailed:
        return []


def probe_and_plan(
    spec: Spec, host: HostContext, runner: ReadOnlyRunner, kinds: Sequence[ResourceKind]
) -> Probed:
    """Probe the host for every kind's facts (in one session) and build the plan."""
    probed_at = datetime.now(UTC).isoformat(timespec="seconds")
    session = ProbeSession(host, runner.run)
    return plan_from_facts(spec, host, kinds, session.collect, probed_at)


def plan_from_facts(
    spec: Spec,
    host: HostContext,
    kinds: Sequence[ResourceKind],
    collect: Collect,
    probed_at: str,
) -> Probed:
    """Plan from whatever answers the probes: a live probe session, or a recorded snapshot.

    `collect` is asked first for what the kinds discover (in-process reads: where programs
    are, which unit files exist), then for every kind's probes at once, then (not root,
    root-only steps planned) for the sudo verdicts of those steps. Nothing here reads the
    host: `collect` does.
    """
    able = [kind for kind in kinds if unmet_need(kind, host) is None]
    found = collect([p for kind in able for p in kind.discover(spec, host)])
    probes = [p for kind in kinds for p in _declared(kind, spec, host, found)]
    facts = found.merged(collect([p for p in probes if p not in found.values]))
    plan = build_plan(spec, host, facts, kinds)
    asks = sudo_probes(root_commands(plan, host))
    if asks:
        # A second, small round: only when not root and the plan has root-only steps.
        plan = block_refused(plan, host, collect(asks))
    return Probed(plan, facts, probed_at)

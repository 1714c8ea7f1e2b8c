"""The contract every resource kind fulfils: what it probes, and what it plans from the facts."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from reconciler.core.action import KindPlan
from reconciler.core.host import HostContext
from reconciler.core.probe import Facts, Probe
from reconciler.spec.model import Spec


class ResourceKind(Protocol):
    """One kind of thing on the host the spec owns (linger, serve entries, a unit ...).

    `probes` names the facts it needs; `plan` is pure: spec + host + facts -> actions/findings.
    """

    name: str

    def probes(self, spec: Spec, host: HostContext) -> Iterable[Probe[Any]]: ...

    def plan(self, spec: Spec, host: HostContext, facts: Facts) -> KindPlan: ...

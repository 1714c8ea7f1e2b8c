"""The programs several kinds look at (node, the gateway), declared the same way by each, so
that equal probes run once (a private helper, not a kind).

Where a program is comes from a discovery probe (`ProgramLocationProbe`); its version probe
is declared with the path found. Planning reads both from the facts, never from the disk.
"""

from __future__ import annotations

from reconciler.core.host import HostContext
from reconciler.core.probe import Facts
from reconciler.facts.programs import ProgramLocationProbe, ProgramVersion, ProgramVersionProbe
from reconciler.spec.model import Spec
from reconciler.spec.naming import product_names

NODE = "node"


def gateway_program(spec: Spec) -> str:
    """The gateway command the spec names, or the product's own."""
    return spec.runtime.gateway.command or product_names(spec.product).command


def location_probe(program: str, host: HostContext) -> ProgramLocationProbe:
    return ProgramLocationProbe.for_user(program, host)


def version_probe(program: str, host: HostContext, found: Facts) -> ProgramVersionProbe:
    """`<program> --version` at the path discovered for it (no command when it is absent)."""
    return ProgramVersionProbe(program, found.get(location_probe(program, host)).path)


def program_version(program: str, host: HostContext, facts: Facts) -> ProgramVersion:
    return facts.get(version_probe(program, host, facts))

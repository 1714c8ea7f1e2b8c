"""Linger: the spec's user keeps a systemd manager without a login, so gateways survive logout.

Wants: `linger: true|false` (null: leave alone), its section (reconciler/spec/sections/linger/).
Probes: the file /var/lib/systemd/linger/<user> (readable without logind, docs/host-facts.md §3).
Fixes: `loginctl enable-linger|disable-linger <user>` as root.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from reconciler.core.action import Action, KindPlan, RunCommand
from reconciler.core.command import Command
from reconciler.core.diff import attribute_changes
from reconciler.core.host import HostContext
from reconciler.core.kind import NO_FACTS, Kind, register
from reconciler.core.probe import Facts, Probe
from reconciler.facts.codec import Wanted, records
from reconciler.facts.systemd import LingerProbe, SystemdProbe
from reconciler.gateway.addresses import LINGER
from reconciler.kinds._systemd import linger_changes
from reconciler.spec.model import Spec

ADDRESS = LINGER
__all__ = ["ADDRESS", "LingerKind", "LingerProbe"]


@records
def _any_spec_may_ask(spec: Spec, host: HostContext) -> Wanted:
    """Linger is recorded whatever this spec asks: a later spec may set it."""
    return Wanted(probes=(LingerProbe(spec.host.user),))


@register(20)
class LingerKind(Kind):
    name = "linger"

    def desired(self, spec: Spec, home: Path) -> Mapping[str, Any]:
        """`linger`: on, off, or null (left alone)."""
        return {"linger": spec.linger}

    def probes(
        self, spec: Spec, host: HostContext, found: Facts = NO_FACTS
    ) -> Iterable[Probe[Any]]:
        if spec.linger is not None:
            yield LingerProbe(spec.host.user)
            yield SystemdProbe()

    def plan(self, spec: Spec, host: HostContext, facts: Facts) -> KindPlan:
        if spec.linger is None:
            return KindPlan()
        user = spec.host.user
        actual = facts.get(LingerProbe(user))
        if not linger_changes(spec.linger, actual):
            return KindPlan()
        verb = "enable-linger" if spec.linger else "disable-linger"
        command = Command(("loginctl", verb, user), needs_root=True, mutating=True)
        return KindPlan(
            actions=(
                Action(
                    address=ADDRESS,
                    kind="create" if spec.linger else "delete",
                    reason=(
                        f"{user}'s gateways must keep running without a login session"
                        if spec.linger
                        else f"the spec turns linger off for {user}"
                    ),
                    operations=(RunCommand(command),),
                    changes=attribute_changes({"linger": spec.linger}, {"linger": actual}),
                    # Blocked without the user or systemd: `loginctl` needs both, and the
                    # planner says so (core/needs.py), as for every systemd step.
                ),
            )
        )

"""Tailscale operator: lets the spec's user change serve entries without root.

Wants: `tailscale.operator: <user>` (null: leave alone), of the tailscale section
(reconciler/spec/sections/tailscale/, the serve kind's). Probes: `tailscale debug prefs`
(`OperatorUser`, absent when unset; needs no root). Fixes: `tailscale set --operator=<user>`
as root.
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
from reconciler.facts.tailscale import TailscalePrefsProbe
from reconciler.gateway.addresses import OPERATOR
from reconciler.spec.model import Spec

ADDRESS = OPERATOR


@register(80)
class OperatorKind(Kind):
    name = "tailscale.operator"

    def desired(self, spec: Spec, home: Path) -> Mapping[str, Any]:
        """`tailscale.operator` (null: left alone; nothing without a tailscale section)."""
        if spec.tailscale is None:
            return {}
        return {"tailscale": {"operator": spec.tailscale.operator}}

    def probes(
        self, spec: Spec, host: HostContext, found: Facts = NO_FACTS
    ) -> Iterable[Probe[Any]]:
        if spec.tailscale is not None and spec.tailscale.operator is not None:
            yield TailscalePrefsProbe()

    def plan(self, spec: Spec, host: HostContext, facts: Facts) -> KindPlan:
        if spec.tailscale is None or spec.tailscale.operator is None:
            return KindPlan()
        wanted = spec.tailscale.operator
        prefs = facts.get(TailscalePrefsProbe())
        if prefs.reachability == "ok" and prefs.operator == wanted:
            return KindPlan()
        command = Command(
            ("tailscale", "set", f"--operator={wanted}"), needs_root=True, mutating=True
        )
        return KindPlan(
            actions=(
                Action(
                    address=ADDRESS,
                    kind="update" if prefs.operator else "create",
                    reason=f"{wanted} must be able to manage serve entries without root",
                    operations=(RunCommand(command),),
                    changes=attribute_changes({"operator": wanted}, {"operator": prefs.operator}),
                    blocked=None if prefs.reachability == "ok" else prefs.detail,
                ),
            )
        )

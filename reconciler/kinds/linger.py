"""Linger: the spec's user keeps a systemd manager without a login, so gateways survive logout.

Wants: `linger: true|false` (null: leave alone). Probes: the file
/var/lib/systemd/linger/<user> (readable without logind, docs/host-facts.md §3). Fixes:
`loginctl enable-linger|disable-linger <user>` as root.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from reconciler.core.action import Action, KindPlan, RunCommand
from reconciler.core.command import Command
from reconciler.core.diff import attribute_changes
from reconciler.core.host import HostContext
from reconciler.core.probe import Facts, Probe
from reconciler.facts.codec import Wanted, recorded, records
from reconciler.spec.model import Spec

ADDRESS = "linger"


@recorded
@dataclass(frozen=True)
class LingerProbe(Probe[bool]):
    """Whether the linger flag file exists for `user` (in-process read)."""

    user: str

    def read(self, host: HostContext) -> bool:
        return (host.linger_dir / self.user).exists()


@records
def _any_spec_may_ask(spec: Spec, host: HostContext) -> Wanted:
    """Linger is recorded whatever this spec asks: a later spec may set it."""
    return Wanted(probes=(LingerProbe(spec.host.user),))


class LingerKind:
    name = "linger"

    def probes(self, spec: Spec, host: HostContext) -> Iterable[Probe[Any]]:
        if spec.linger is not None:
            yield LingerProbe(spec.host.user)

    def plan(self, spec: Spec, host: HostContext, facts: Facts) -> KindPlan:
        if spec.linger is None:
            return KindPlan()
        user = spec.host.user
        actual = facts.get(LingerProbe(user))
        if actual == spec.linger:
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
                    blocked=None if host.user else f"user {user!r} does not exist on this host",
                ),
            )
        )

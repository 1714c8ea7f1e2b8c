"""Unprivileged unattended runs: root-only steps become blocked steps, never escalation attempts.

A user timer has no one to type a sudo password, and it must not learn to escalate. So before a
non-interactive apply by a non-root user, every runnable action that needs root (enabling
linger, setting the Tailscale operator, a system-wide npm install) is marked blocked with the
exact commands to run once as root; actions waiting on it are blocked in turn
(`propagate_blocks`). Everything else proceeds, and blocked steps do not make the run fail.

Pure: a plan in, a plan out.
"""

from __future__ import annotations

from dataclasses import replace

from reconciler.core.action import Action, RunCommand
from reconciler.core.host import HostContext
from reconciler.core.plan import Plan, propagate_blocks


def block_root_steps(plan: Plan, host: HostContext, *, apply_as_root: str) -> Plan:
    """`plan` with its root-only actions blocked (unchanged when we are root).

    `apply_as_root` is the fallback instruction for steps that are not plain commands (a file
    only root may write), e.g. `sudo /opt/r/bin/python -m reconciler apply /srv/spec.yaml`.
    """
    if host.is_root:
        return plan
    actions = [
        replace(action, blocked=_why(action, apply_as_root))
        if action.blocked is None and action.needs_root
        else action
        for action in plan.actions
    ]
    return replace(plan, actions=propagate_blocks(actions))


def root_commands(action: Action, apply_as_root: str) -> str:
    """What to run once as root to carry out `action`."""
    commands = [op.command for op in action.operations if isinstance(op, RunCommand)]
    if len(commands) == len(action.operations) and commands:
        return " && ".join(("sudo " if c.needs_root else "") + c.display() for c in commands)
    return apply_as_root


def _why(action: Action, apply_as_root: str) -> str:
    return "needs root, and an unattended run never escalates; run once as root: " + root_commands(
        action, apply_as_root
    )

"""Root-only steps in an unprivileged unattended run: blocked with the one-time root command."""

from __future__ import annotations

from pathlib import Path

from kinds.helpers import ROOT, make_host

from reconciler.core.action import Action, RunCommand, WriteFile
from reconciler.core.command import Command
from reconciler.core.plan import Plan
from reconciler.unattended.root_steps import block_root_steps

APPLY = "sudo /opt/r/bin/python -m reconciler apply /srv/spec.yaml"

LINGER = Action(
    "linger",
    "create",
    "gateways survive logout",
    (RunCommand(Command(("loginctl", "enable-linger", "user"), needs_root=True, mutating=True)),),
)
SERVICE = Action(
    "profile[p].service",
    "create",
    "start it",
    (RunCommand(Command(("systemctl", "--user", "start", "x"), scope="user", mutating=True)),),
    depends_on=("linger",),
)
OTHER = Action(
    "runtime.gateway",
    "update",
    "pin",
    (RunCommand(Command(("npm", "install", "-g", "clawdbot@1"), mutating=True)),),
)
ROOT_FILE = Action(
    "etc.file", "create", "x", (WriteFile(Path("/etc/x"), "", 0o644, needs_root=True),)
)


def test_root_steps_and_their_dependents_are_blocked_the_rest_runs() -> None:
    plan = block_root_steps(
        Plan((LINGER, SERVICE, OTHER, ROOT_FILE)), make_host(), apply_as_root=APPLY
    )
    by = {a.address: a for a in plan.actions}
    assert by["linger"].blocked is not None
    assert by["linger"].blocked.endswith("run once as root: sudo loginctl enable-linger user")
    assert by["profile[p].service"].blocked == "waits for linger (blocked)"
    assert by["runtime.gateway"].blocked is None
    assert by["etc.file"].blocked is not None and by["etc.file"].blocked.endswith(APPLY)
    assert [a.address for a in plan.runnable] == ["runtime.gateway"]


def test_root_runs_everything() -> None:
    plan = Plan((LINGER, SERVICE))
    assert block_root_steps(plan, make_host(invoker=ROOT), apply_as_root=APPLY) is plan

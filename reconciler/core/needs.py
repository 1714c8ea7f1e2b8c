"""What an action needs of the host, decided once by the planner (never by a kind).

A kind declares what it needs before it can look at anything (`Kind.needs`, core/kind.py); an
*action* needs more, and what it needs follows from its operations: a `systemctl --user` step
needs the user's manager, a unit file needs systemd, both act as the spec's user. Which
operation needs what, and how the facts answer a fact-decided need (is systemd PID 1? does the
user's manager answer, or does this plan start it by turning linger on?), are rules of the one
module that knows those facts; it registers them here (`register_rules`). Which operations act
as the spec's user ("as-user") needs no fact and is the core's own rule (`acts_as_user`). The
planner asks `gate` for every action a kind plans, so no kind checks a need itself and none can
forget one; `gated_plan` gives a plan built outside the kinds (a rollback) the same gates.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Literal, get_args

from reconciler.core.action import (
    Action,
    EnsureDirectory,
    EnsureSecretEnv,
    ForgetBadVersion,
    ForgetFailedInstall,
    InstallVersion,
    MarkBadVersion,
    MoveAside,
    Operation,
    RemoveFile,
    RemoveTree,
    RunCommand,
    WriteFile,
    WriteTextfile,
)
from reconciler.core.host import HostContext
from reconciler.core.kind import NEEDS
from reconciler.core.probe import Facts
from reconciler.frozen import frozen
from reconciler.spec.model import Spec

# What an action may need, in the order they are checked (the first unmet one is the reason):
# - "user": the spec's user exists here (NEEDS, core/kind.py);
# - "as-user": we may act as that user (we are the user or root, or sudo lets us: NEEDS);
# - "systemd": systemd is this host's init (a fact);
# - "user-manager": the user's systemd manager answers, or this plan starts it (facts).
ActionNeed = Literal["user", "as-user", "systemd", "user-manager"]
ORDER: tuple[ActionNeed, ...] = get_args(ActionNeed)


@frozen
class Gate:
    """What one need does to an action that has it: nothing, an order (wait for the action
    that meets it, e.g. the linger step that starts the manager), or a block (why not)."""

    depends_on: tuple[str, ...] = ()
    blocked: str | None = None


@frozen
class Rules:
    """The fact-decided needs' rules: which needs an operation has (besides the host-only
    ones it implies, which it names too), and the gate of a need on these facts."""

    needs_of: Callable[[Operation, HostContext], frozenset[ActionNeed]]
    gate: Callable[[ActionNeed, Spec, HostContext, Facts], Gate]


_RULES: list[Rules] = []


def register_rules(rules: Rules) -> None:
    """Add the rules of the module that knows these facts (once, at its import)."""
    if rules not in _RULES:
        _RULES.append(rules)


_AS_USER: frozenset[ActionNeed] = frozenset({"as-user"})


def acts_as_user(op: Operation, host: HostContext) -> bool:
    """Does the runner carry `op` out as the spec's user (shell/runner.py)? A command of the
    user's scope; an install or removal in the user's prefix; the switch memory (in the home);
    a file operation on a path in the user's home or for a file the user is to own (a profile's
    state under a data root is the user's too). Root is never a confused deputy there, and an
    account that cannot act as the user cannot do it either: that is the "as-user" need."""
    if isinstance(op, RunCommand):
        return op.command.scope == "user"
    if isinstance(op, InstallVersion | RemoveTree):
        return op.scope == "user"
    if isinstance(op, MarkBadVersion | ForgetBadVersion | ForgetFailedInstall | WriteTextfile):
        return True
    if isinstance(op, WriteFile | EnsureDirectory | MoveAside | EnsureSecretEnv | RemoveFile):
        owner = getattr(op, "owner", None)
        home = host.user.home if host.user is not None else None
        in_home = home is not None and op.path.is_relative_to(home)
        return in_home or (owner is not None and owner == host.user_name)
    return False


def needs_of(action: Action, host: HostContext) -> frozenset[ActionNeed]:
    """Every need of `action`: the union over its operations of what the rules say."""
    found: set[ActionNeed] = set()
    for op in action.operations:
        if acts_as_user(op, host):
            found |= _AS_USER
        for rules in _RULES:
            found |= rules.needs_of(op, host)
    return frozenset(found)


class Gates:
    """The gates of one plan: each need's gate computed once (the facts do not change while
    a plan is built), then applied to every action that has the need."""

    def __init__(self, spec: Spec, host: HostContext, facts: Facts) -> None:
        self._spec, self._host, self._facts = spec, host, facts
        self._known: dict[ActionNeed, Gate] = {}

    def of(self, need: ActionNeed) -> Gate:
        """The gate of `need` on this plan's host and facts."""
        if need not in self._known:
            self._known[need] = self._decide(need)
        return self._known[need]

    def _decide(self, need: ActionNeed) -> Gate:
        if need in NEEDS:
            return Gate(blocked=NEEDS[need](self._host))
        for rules in _RULES:
            gate = rules.gate(need, self._spec, self._host, self._facts)
            if gate != Gate():
                return gate
        return Gate()

    def apply(self, action: Action) -> Action:
        """`action` with its needs' gates: the first unmet need's reason replaces any block of
        the kind's own (a unit that cannot run without systemd is blocked for that first), and
        the orders of the needs met by this plan are added to what it waits for."""
        needs = needs_of(action, self._host)
        if not needs:
            return action
        if "user" not in needs:
            needs |= {"user"}  # every need is the spec's user's
        depends = list(action.depends_on)
        first: str | None = None
        for need in ORDER:
            if need not in needs:
                continue
            gate = self.of(need)
            depends.extend(d for d in gate.depends_on if d not in depends)
            if gate.blocked is not None:
                first = first or gate.blocked
                if need in ("user", "systemd"):
                    break  # without the user or systemd the later needs cannot be asked
        if first is None and len(depends) == len(action.depends_on):
            return action
        return replace(action, depends_on=tuple(depends), blocked=first or action.blocked)

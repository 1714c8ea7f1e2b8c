"""The contract every resource kind fulfils: what it probes, and what it plans from the facts."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol, TypeVar

from reconciler.core.action import Action, KindPlan, PlanError
from reconciler.core.host import Account, HostContext, user_sudoers_line
from reconciler.core.probe import Facts, Probe
from reconciler.spec.model import Spec

NO_FACTS = Facts(values={}, results={})


def _as_user(host: HostContext) -> str | None:
    """Why we may not act as the spec's user here (None when we may, or when there is no
    user: "user" says so first)."""
    if host.user is None or host.can_act_for_user:
        return None
    user, invoker = host.user.name, host.invoker.name
    return (
        f"changes {user}'s files and services; we are {invoker} (run as {user} or as root, "
        f"or allow {invoker} to act as {user} in /etc/sudoers.d/reconciler, edited with "
        f"visudo: {user_sudoers_line(invoker, user)})"
    )


# What a kind (or an action, core/needs.py) may need of the host, each with why it is not met:
# - "user": the spec's user exists here (its home, its uid, its manager are known);
# - "as-user": we may act as that user (we are the user or root, or sudo lets us).
Need = Literal["user", "as-user"]
NEEDS: dict[Need, Callable[[HostContext], str | None]] = {
    "user": lambda host: (
        None if host.user is not None else f"user {host.user_name!r} does not exist on this host"
    ),
    "as-user": _as_user,
}
NEEDS_USER: frozenset[Need] = frozenset({"user"})


class ResourceKind(Protocol):
    """One kind of thing on the host the spec owns (linger, serve entries, a unit ...).

    Three pure steps, none of which reads the host (every read is a probe):
    - `discover`: probes whose answers decide which other probes to run (where a program is,
      which unit files a directory holds); in-process reads, run first;
    - `probes`: the facts it needs, given the discovered ones (`found`);
    - `plan`: spec + host + facts -> actions, findings, errors and handlers. A kind that
      cannot plan raises `PlanError` (or lets a probe's `ProbeFailed` through); the planner
      turns either into a plan error.
    And `desired(spec, home)`: what it wants of any host, resolved with the functions it plans
    with, as a nested mapping of JSON-like values (`home` is the user's home, often the
    placeholder `~user`). `reconciler diff` compares the union over every kind, so a spec
    field no kind shows is a change a reviewer is told nothing about (tests/test_desired_state.py
    changes every schema leaf and fails then).
    A kind imports the core, the facts, the spec and private helpers (`kinds/_*.py`,
    `reconciler/gateway/`), never another kind: what it needs of another is data (the other
    kind's actions, seen by its handlers; addresses from `reconciler.gateway.addresses`).

    Preconditions are data: `needs` names what the kind needs of the host (NEEDS). When one
    is not met, the planner asks the kind neither to discover, probe nor plan: it lists the
    kind's `placeholders` (what it would do, read from the spec alone), each blocked with why.
    """

    name: str
    needs: ClassVar[frozenset[Need]]

    def placeholders(self, spec: Spec, host: HostContext) -> Iterable[Action]: ...

    def discover(self, spec: Spec, host: HostContext) -> Iterable[Probe[Any]]: ...

    def probes(
        self, spec: Spec, host: HostContext, found: Facts = NO_FACTS
    ) -> Iterable[Probe[Any]]: ...

    def plan(self, spec: Spec, host: HostContext, facts: Facts) -> KindPlan: ...

    def desired(self, spec: Spec, home: Path) -> Mapping[str, Any]: ...


class Kind:
    """Defaults for the optional parts of the contract (a kind without discovery)."""

    name: str = ""
    needs: ClassVar[frozenset[Need]] = frozenset()

    def placeholders(self, spec: Spec, host: HostContext) -> Iterable[Action]:
        """Nothing to show while a need is not met."""
        return ()

    def discover(self, spec: Spec, host: HostContext) -> Iterable[Probe[Any]]:
        """Nothing to discover: every probe is known from the spec and host alone."""
        return ()


def unmet(needs: frozenset[Need], host: HostContext) -> str | None:
    """Why one of `needs` is not met on this host (the first, by name), or None."""
    for need in sorted(needs):
        reason = NEEDS[need](host)
        if reason is not None:
            return reason
    return None


def unmet_need(kind: ResourceKind, host: HostContext) -> str | None:
    """Why `kind` can neither probe nor plan on this host (its first unmet need), or None."""
    return unmet(kind.needs, host)


def spec_user(host: HostContext) -> Account:
    """The spec's user, for a kind that declared `needs = {"user"}` (the planner checked it)."""
    if host.user is None:
        raise PlanError(NEEDS["user"](host) or "")
    return host.user


K = TypeVar("K", bound=type)
_REGISTERED: dict[str, tuple[int, type]] = {}


def register(rank: int) -> Callable[[K], K]:
    """Class decorator: this kind takes part in every plan, listed at `rank` (lower first).

    A kind registers itself in its own module; `reconciler.kinds.all_kinds` imports every
    kind module, so adding a kind touches no list elsewhere.
    """

    def add(cls: K) -> K:
        name = getattr(cls, "name", "")
        taken = {r: n for n, (r, _) in _REGISTERED.items() if n != name}
        if not name or rank in taken:
            raise ValueError(f"kind {cls.__name__}: needs a name and a rank of its own ({rank})")
        _REGISTERED[name] = (rank, cls)
        return cls

    return add


def registered_kinds() -> tuple[type, ...]:
    """Every registered kind class, in rank order."""
    return tuple(cls for _, cls in sorted(_REGISTERED.values(), key=lambda item: item[0]))

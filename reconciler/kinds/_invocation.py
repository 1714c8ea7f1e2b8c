"""How a timer's unit runs the reconciler (a private helper of the reconcile and backup timers):
the invocation probe, the program a unit's ExecStart starts with, and why the spec's user could
not run it."""

from __future__ import annotations

from reconciler.core.host import HostContext
from reconciler.facts.invocation import Invocation, InvocationProbe
from reconciler.gateway.paths import expand, home
from reconciler.spec.model import Spec


def invocation_probe(spec: Spec, host: HostContext) -> InvocationProbe:
    """The one invocation probe of a spec (both timers declare the same one)."""
    source = spec.reconcile.source
    return InvocationProbe(spec.path, expand(source.path, home(host)) if source else None)


def program(invocation: Invocation, command: tuple[str, ...] | None) -> tuple[str, ...]:
    """What the timer runs before `apply`: the spec's command, the agent installed over SSH, the
    installed entry point, or the interpreter with `-m reconciler`."""
    if command is not None:
        return command
    if invocation.zipapp is not None:
        return (invocation.python, invocation.zipapp)
    if invocation.entry_point is not None:
        return (invocation.entry_point,)
    return (invocation.python, "-m", "reconciler")


def unusable_interpreter(
    invocation: Invocation, host: HostContext, command: tuple[str, ...] | None
) -> str | None:
    """Why the spec user's timer could not run this interpreter, or None.

    A scratch install (a clone's .venv, /tmp) breaks the timer when it changes or goes away; root
    planning from its own venv (under /root) would install a timer the user cannot run. The
    spec's own `reconcile.command` is taken as given.
    """
    assert host.user is not None
    if command is not None:
        return None
    if invocation.scratch is not None:
        return (
            f"the reconciler runs from {invocation.python}, {invocation.scratch}: a timer bound "
            "to it breaks when that directory changes or goes away. Install the reconciler "
            "(pipx install dist/reconciler-*.whl, or a venv under /opt/reconciler) and apply "
            "with that one, or set reconcile.command in the spec to run this one on purpose"
        )
    if host.invoker.uid == host.user.uid:
        return None
    if invocation.user_cannot is not None:
        return (
            f"{host.user.name} {invocation.user_cannot} (checked with {host.user.name}'s "
            f"permissions; the timer runs as {host.user.name}): install the reconciler where "
            f"every user can run it (e.g. a venv under /opt made with an interpreter outside "
            f"{host.invoker.home}), keep the spec where {host.user.name} can read it, or set "
            "reconcile.command"
        )
    private = str(host.invoker.home).rstrip("/") + "/"
    if invocation.python.startswith(private):
        return (
            f"the reconciler runs from {invocation.python}, inside {host.invoker.name}'s home, "
            f"which {host.user.name}'s timer cannot use: apply as {host.user.name}, or install "
            "the reconciler where every user can run it (e.g. a venv under /opt)"
        )
    return None

"""The health-gated switch as the unit kind plans it (a private helper, not a kind).

When a profile's unit changes the gateway version a running gateway runs (or moves a global
install to a versioned one), its write becomes a `GatedSwitch` (core/action.py; carried out by
shell/switch.py): copies kept, unit written, restart, `gateway health` until
`runtime.gateway.start_timeout_s` and still healthy `runtime.gateway.health_window_s` later,
else rollback. The reconciler's memory (facts/switches.py) adds two cases:

- a version marked bad for the profile (it failed and was rolled back): the switch is blocked
  with the mark's message, so the timer never tries it again (`update --retry` clears it);
- a switch that was interrupted (its intent file is still there): the switch is planned again
  even when the unit already names the new version, to check health and roll back if needed.

A switch to what no gateway unit on the host runs yet (the new unit's node and entry point in
no unit file's ExecStart) warms it up first, while the old version serves (`WarmUp`): its
first start compiles every module, a restart does not (docs/updates.md).
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

from reconciler.core.action import Action, GatedSwitch, PlanError, WarmUp, WriteFile
from reconciler.core.command import Command
from reconciler.core.host import HostContext
from reconciler.core.kind import spec_user
from reconciler.core.probe import Facts, Probe
from reconciler.facts.files import DirectoryListing
from reconciler.facts.profile_files import gateway_units_probe, unit_probe
from reconciler.facts.switches import SwitchMemory, SwitchMemoryProbe, memory_dir
from reconciler.facts.systemd import UnitStatusProbe, unit_environment
from reconciler.gateway.addresses import DAEMON_RELOAD, config_address, unit_address
from reconciler.gateway.paths import ProfilePaths, names, profile_paths, uses_token_file
from reconciler.gateway.versions import prefix_path, profile_version, version_in_exec, versioned
from reconciler.kinds._programs import gateway_program, version_probe
from reconciler.kinds._systemd import unit_status
from reconciler.spec.model import Profile, Spec
from reconciler.spec.naming import product_names


def memory_probe(host: HostContext) -> SwitchMemoryProbe | None:
    """The probe of the reconciler's switch memory (in the spec user's home)."""
    return SwitchMemoryProbe(memory_dir(host.user.home)) if host.user is not None else None


def switch_memory(host: HostContext, facts: Facts) -> SwitchMemory:
    probe = memory_probe(host)
    return facts.get(probe) if probe is not None else SwitchMemory()


def health_command(
    spec: Spec, profile: Profile, paths: ProfilePaths, program: tuple[str, ...]
) -> Command:
    """`env <profile env> <PREFIX>GATEWAY_PORT=<port> <program...> gateway health --json` as
    the user, the token (auth: token) from the profile's env file, never in argv.

    No `--url`: every release we install then asks its local gateway, `ws://127.0.0.1:<port>`
    with the port from the environment, and takes the token from the environment (clawdbot
    2026.1.24-3 and openclaw 2026.1.x `gateway/call.js`; openclaw 2026.9.x refuses a `--url`
    without `--token`, `gateway_credentials_required`, and `--token` would put the secret in
    argv, visible in /proc). A profile bound to the tailnet has no gate (nothing on loopback).
    """
    names = product_names(spec.product)
    env = [
        *([(names.env("PROFILE"), profile.name)] if profile.name != "default" else []),
        (names.env("STATE_DIR"), str(paths.state)),
        (names.env("CONFIG_PATH"), str(paths.config)),
        (names.env("GATEWAY_PORT"), str(profile.port)),
    ]
    return Command(
        ("env", *(f"{k}={v}" for k, v in env), *program, "gateway", "health", "--json"),
        scope="user",
        timeout_s=20,
        env_file=paths.token_env if uses_token_file(spec, profile) else None,
    )


def exec_program(unit_text: str | None) -> tuple[str, ...] | None:
    """The words of a unit's ExecStart before `gateway` (what runs the gateway: a command, or
    node and an entry point), None without one."""
    for line in (unit_text or "").splitlines():
        if line.startswith("ExecStart="):
            try:
                words = shlex.split(line[len("ExecStart=") :].lstrip("@-:+!"))
            except ValueError:
                return None
            if "gateway" in words:
                return tuple(words[: words.index("gateway")])
            return tuple(words)
    return None


def switch_probes(spec: Spec, host: HostContext) -> Iterable[Probe[Any]]:
    """What `switch_gate` reads besides the unit files: the memory and the units' status."""
    probe = memory_probe(host)
    if probe is None or not versioned(spec):
        return
    yield probe
    yield gateway_units_probe(host)  # what runs already needs no warm-up
    for profile in spec.profiles:
        yield UnitStatusProbe(names(spec).unit(profile.name))


# Where a warm-up's throwaway state lives, in the spec user's home (removed afterwards).
WARM_UP_DIR = Path(".cache/reconciler/warm-up")


def _first_run(host: HostContext, facts: Facts, content: str) -> tuple[str, ...] | None:
    """`content`'s program (node and entry point) when no gateway unit file on the host runs
    it yet (its compile caches are cold: node's cache is keyed by node's version and the
    files'), else None."""
    program = exec_program(content)
    if not program:
        return None
    probe = gateway_units_probe(host)
    listing = facts.values.get(probe)  # a listing that failed: warm up rather than not
    if isinstance(listing, DirectoryListing) and any(
        exec_program(e.text) == program for e in listing.entries
    ):
        return None
    return program


#: what the plan says of a first start the spec does not warm up
COLD_START = "cold first start: runtime.gateway.warm_up is false"


def cold_start(spec: Spec, host: HostContext, facts: Facts, content: str) -> bool:
    """Whether `content`'s program starts for the first time on this host with no warm-up
    because the spec turned warm-ups off (the plan says so: a longer downtime)."""
    return not spec.runtime.gateway.warm_up and _first_run(host, facts, content) is not None


def warm_up_for(
    spec: Spec, profile: Profile, host: HostContext, facts: Facts, content: str
) -> WarmUp | None:
    """The warm-up before `profile`'s unit first runs `content`'s program (node and entry
    point), or None when a gateway unit file on the host runs that program already (its
    caches are warm) or the spec turned warm-ups off (`runtime.gateway.warm_up: false`)."""
    assert host.user is not None
    program = _first_run(host, facts, content) if spec.runtime.gateway.warm_up else None
    if program is None:
        return None
    table = product_names(spec.product)
    return WarmUp(
        unit=f"reconciler-warm-up-{profile.name}.service",
        program=program,
        path_env=unit_environment(content).get("PATH", ""),
        env_prefix=table.env_prefix,
        config_name=table.config_file,
        directory=host.user.home / WARM_UP_DIR / profile.name,
        timeout_s=spec.runtime.gateway.start_timeout_s,
    )


def switch_gate(
    spec: Spec,
    profile: Profile,
    host: HostContext,
    facts: Facts,
    action: Action | None,
    content: str,
    by_hand: str | None = None,
) -> Action | None:
    """The unit's action for `profile`, as a health-gated switch when it changes what a running
    gateway runs (versioned installs only); `content` is the unit's wanted text. `by_hand`: the
    version it runs was chosen by hand (`rollback`), not pinned: a mark on it does not block.
    The unit kind declared that it needs the user (the planner checked it)."""
    user = spec_user(host)
    if not versioned(spec) or profile.bind == "tailnet":
        # bind tailnet: nothing listens on loopback to ask; a plain write and restart.
        return action
    paths = profile_paths(spec, profile, host)
    memory = switch_memory(host, facts)
    found = facts.get(unit_probe(paths))
    status = unit_status(facts, paths.unit)
    old_program, new_program = exec_program(found.text), exec_program(content)
    if new_program is None:
        return action
    prefix = prefix_path(spec, user.home)
    new = by_hand or profile_version(spec, profile) or "?"
    interrupted = memory.interrupted_switch(profile.name)
    if interrupted is not None and interrupted.replaces:
        # Its copies are of a product move (the unit it replaced, no unit of this name before):
        # resuming them as a version switch would remove this unit on rollback.
        raise PlanError(
            f"a product move of profile {profile.name} replacing {interrupted.replaces} "
            f"started at {interrupted.started_at} and never finished, and the spec no longer "
            f"asks for it: apply the spec that started it to finish (or roll back) the move, "
            "then change the product"
        )
    if action is None:
        if interrupted is None:
            return None
        # Killed after writing the unit: check the version it names, roll back if unhealthy.
        action = Action(
            unit_address(profile.name),
            "update",
            "",
            (WriteFile(paths.unit_file, content, 0o644, user.name),),
        )
        old: str | None = interrupted.from_version
    else:
        running = status is not None and status.running
        if interrupted is None and not (running and found.exists and old_program != new_program):
            return action  # nothing runs that could be rolled back to: a plain write
        old = _label(spec, host, facts, prefix, found.text)
    old_check = old_program if old_program else new_program
    return gated(
        spec,
        profile,
        host,
        paths,
        action,
        (old, new),
        (old_check, new_program),
        memory,
        marks=by_hand is None,
        warm_up=warm_up_for(spec, profile, host, facts, content),
        cold=cold_start(spec, host, facts, content),
    )


def _label(
    spec: Spec, host: HostContext, facts: Facts, prefix: Path, unit_text: str | None
) -> str | None:
    """The version the current unit runs: `<prefix>/<version>/`, or the gateway found on PATH
    (a global install, `npm install -g` or the gateway's own `gateway install`)."""
    for line in (unit_text or "").splitlines():
        if line.startswith("ExecStart="):
            found = version_in_exec(line, prefix)
            if found is not None:
                return found
    gateway = facts.get(version_probe(gateway_program(spec), host, facts))
    return f"{gateway.version} (global install)" if gateway.version else None


def gated(
    spec: Spec,
    profile: Profile,
    host: HostContext,
    paths: ProfilePaths,
    action: Action,
    versions: tuple[str | None, str],
    programs: tuple[tuple[str, ...], tuple[str, ...]],
    memory: SwitchMemory,
    marks: bool = True,
    warm_up: WarmUp | None = None,
    cold: bool = False,
) -> Action:
    """`action` (the unit's write) as a health-gated switch from versions[0] (None: unknown)
    to versions[1]; `programs`: how to run the old and the new version's CLI. A bad-version
    mark on versions[1] blocks it unless `marks` is False (a version chosen by hand).
    `warm_up`: started first, while the old version serves (`warm_up_for`); `cold`: a first
    start the spec does not warm up (`cold_start`), said in the reason."""
    assert host.user is not None
    old, new = versions
    write = next(
        (
            op
            for op in action.operations
            if isinstance(op, WriteFile) and op.path == paths.unit_file
        ),
        None,
    )
    if write is None:
        return action
    gateway = spec.runtime.gateway
    switch = GatedSwitch(
        profile=profile.name,
        unit=paths.unit,
        unit_file=paths.unit_file,
        content=write.content,
        config=paths.config,
        check=health_command(spec, profile, paths, programs[1]),
        rollback_check=health_command(spec, profile, paths, programs[0]),
        from_version=old,
        to_version=new,
        start_timeout_s=gateway.start_timeout_s,
        settle_s=gateway.health_window_s,
        memory=memory_dir(host.user.home),
        owner=host.user.name,
        state=paths.state,
    )
    if warm_up is not None:
        switch = replace(switch, warm_up=warm_up)
    shown_old = old or "the unit before"
    nodes = ""
    if len(programs[0]) == 2 and len(programs[1]) == 2 and programs[0][0] != programs[1][0]:
        # `<node> <entry>` both: the node changes (a pinned node, gateway/node.py).
        nodes = f" (node {programs[0][0]} -> {programs[1][0]})"
    warm = f" (warmed up first while {shown_old} serves)" if warm_up is not None else ""
    if cold:
        warm = f" ({COLD_START})"
    reason = (
        f"profile {profile.name}: {shown_old} -> {new}{nodes}{warm}; if unhealthy within "
        f"{gateway.start_timeout_s:g} s (or crashing within {gateway.health_window_s:g} s "
        f"after): roll back to {shown_old}"
    )
    interrupted = memory.interrupted_switch(profile.name)
    if interrupted is not None:
        reason = (
            f"a switch of profile {profile.name} to {interrupted.to_version} started at "
            f"{interrupted.started_at} and never finished; " + reason
        )
    mark = memory.bad_version(profile.name, new) if marks else None
    return replace(
        action,
        reason=reason,
        operations=tuple(switch if op is write else op for op in action.operations),
        # The switch reloads and restarts by itself: the service only waits for it (and is
        # skipped when it fails), it does not restart the gateway again.
        triggers=tuple(t for t in action.triggers if t != DAEMON_RELOAD),
        after=tuple(dict.fromkeys([*action.after, config_address(profile.name)])),
        blocked=action.blocked or (mark.blocked_message() if mark is not None else None),
    )

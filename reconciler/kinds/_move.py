"""The product move (clawdbot -> openclaw) as the unit kind plans it (a private helper).

A spec whose `product` succeeds another (`openclaw` succeeds `clawdbot`, spec/naming.py) and a
host where a profile's unit of that other product is still there (`clawdbot-gateway-ops.service`
in the user's unit directory, as probed) get ONE health-gated step for the profile: the unit's
action becomes a `GatedSwitch` with `replaces` set (core/action.py, carried out by
shell/switch.py): stop the clawdbot unit, copy the state directory, rename the env file's
`CLAWDBOT_*` variables to `OPENCLAW_*` (the same token), write and start the openclaw unit, gate;
then the clawdbot unit is disabled and removed, or, unhealthy, everything comes back.

The state stays where it is: the spec's `state_dir` must name the directory the replaced unit
uses (its `CLAWDBOT_STATE_DIR`, else clawdbot's default for the profile), else the plan stops
with the line to add. That is explicit in the spec, not probed into the paths, so every kind,
`desired`, `diff`, backups and doctor compute the same paths from the spec alone
(docs/updates.md "The move from clawdbot to openclaw" says why). A move interrupted after the
replaced unit's file was removed is found by its intent (`replaces`) and planned again, its
unit text read from the memory's copy.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

from reconciler.core.action import Action, GatedSwitch, PlanError
from reconciler.core.diff import attribute_changes
from reconciler.core.host import HostContext
from reconciler.core.kind import spec_user
from reconciler.core.probe import Facts, Probe
from reconciler.facts.files import PathProbe
from reconciler.facts.switches import REPLACED_COPY, SWITCH_DIR, memory_dir
from reconciler.facts.systemd import unit_environment
from reconciler.frozen import frozen
from reconciler.gateway.addresses import config_address, service_address, unit_address
from reconciler.gateway.paths import (
    ProfilePaths,
    expand,
    token_key,
    unit_dir,
    uses_token_file,
)
from reconciler.gateway.versions import is_version, profile_version
from reconciler.kinds._switch import (
    COLD_START,
    cold_start,
    exec_program,
    health_command,
    memory_probe,
    switch_memory,
    warm_up_for,
)
from reconciler.kinds._systemd import unit_diff
from reconciler.spec.model import Product, Profile, Spec
from reconciler.spec.naming import ProductNames, product_names


@frozen
class Move:
    """A profile's unit of the product the spec's succeeds, which the move replaces."""

    product: Product  # the replaced product ("clawdbot")
    unit: str
    unit_file: Path
    text: str  # its text: the file's, or the memory's copy when an interrupted move removed it
    state: Path  # where it keeps the profile's state
    resumed: bool  # an interrupted move's intent is still there


def predecessor(spec: Spec) -> ProductNames | None:
    """The naming table of the product the spec's product succeeds, if any."""
    succeeds = product_names(spec.product).succeeds
    return product_names(succeeds) if succeeds is not None else None


def _product(names: ProductNames) -> Product:
    """A naming table's product name (the table's keys are exactly the spec's products)."""
    return "openclaw" if names.command == "openclaw" else "clawdbot"


def replaced_units(spec: Spec) -> frozenset[str]:
    """Pure: the units a product move replaces (one per profile), which the unit kind plans
    and the legacy units kind therefore leaves alone."""
    old = predecessor(spec)
    return frozenset(old.unit(p.name) for p in spec.profiles) if old is not None else frozenset()


def _copy_path(host: HostContext, profile: str) -> Path:
    assert host.user is not None
    return memory_dir(host.user.home) / SWITCH_DIR / profile / REPLACED_COPY


def move_probes(spec: Spec, host: HostContext) -> Iterable[Probe[Any]]:
    """The replaced units' files (with text), the memory, and the copies an interrupted move
    keeps of them."""
    old = predecessor(spec)
    memory = memory_probe(host)
    if old is None or memory is None:
        return
    yield memory
    for profile in spec.profiles:
        yield PathProbe(unit_dir(host) / old.unit(profile.name), content=True)
        yield PathProbe(_copy_path(host, profile.name), content=True)


def kept_state(text: str, old: ProductNames, profile: str, home: Path) -> Path:
    """Pure: the state directory a unit of product `old` uses: its `<PREFIX>STATE_DIR`
    assignment (the last one wins, as in systemd), else the product's default for `profile`."""
    found = unit_environment(text).get(old.env("STATE_DIR"))
    return expand(found or old.state_dir(profile), home)


def product_move(spec: Spec, profile: Profile, host: HostContext, facts: Facts) -> Move | None:
    """The move due for `profile`, or None (no predecessor, or nothing of it left). For the unit
    kind, which declared that it needs the user (the planner checked it)."""
    old = predecessor(spec)
    if old is None:
        return None
    name = old.unit(profile.name)
    file = unit_dir(host) / name
    found = facts.get(PathProbe(file, content=True))
    interrupted = switch_memory(host, facts).interrupted_switch(profile.name)
    resumed = interrupted is not None and interrupted.replaces == name
    text = found.text if found.exists else None
    if text is None and resumed:
        text = facts.get(PathProbe(_copy_path(host, profile.name), content=True)).text
        if text is None:
            raise PlanError(
                f"a move to {spec.product} was interrupted after "
                f"{name} was removed, and its copy {_copy_path(host, profile.name)} is gone: "
                f"put {file} back by hand (its backup beside it), then apply again"
            )
    if text is None:
        return None
    state = kept_state(text, old, profile.name, spec_user(host).home)
    return Move(_product(old), name, file, text, state, resumed)


def installed_version(text: str, old: ProductNames) -> str | None:
    """Pure: the version a unit of product `old` runs from a versioned install (its ExecStart
    names `<prefix>/<version>/node_modules/<package>/...`, whatever the prefix), else None."""
    marker = f"/node_modules/{old.package}/"
    for line in text.splitlines():
        if not line.startswith("ExecStart="):
            continue
        for word in line[len("ExecStart=") :].replace('"', " ").split():
            if marker in word:
                candidate = word.split(marker, 1)[0].rsplit("/", 1)[-1]
                if is_version(candidate):
                    return candidate
    return None


def _tilde(path: Path, home: Path) -> str:
    return f"~/{path.relative_to(home)}" if path.is_relative_to(home) else str(path)


def plan_move(
    spec: Spec,
    profile: Profile,
    host: HostContext,
    facts: Facts,
    paths: ProfilePaths,
    content: str,
    move: Move,
) -> Action:
    """The profile's unit action as the move: one `GatedSwitch` replacing `move.unit`."""
    assert host.user is not None
    home = host.user.home
    if move.state != paths.state:
        raise PlanError(
            f"{move.unit} keeps profile {profile.name}'s state in "
            f"{move.state}, and the {spec.product} unit would use {paths.state} (empty: "
            f"credentials, sessions, paired devices and the token would be left behind): set "
            f"`state_dir: {_tilde(move.state, home)}` on profile {profile.name} to move it as "
            f"it is (docs/updates.md), or remove {move.unit_file} yourself to start afresh"
        )
    gateway = spec.runtime.gateway
    version = profile_version(spec, profile)
    new = version or f"{gateway.package} (global install)"
    before = installed_version(move.text, product_names(move.product))
    old_label = f"{move.product} {before}" if before else move.product
    new_program = exec_program(content) or ()
    old_program = exec_program(move.text) or (move.product,)
    old_spec = replace(spec, product=move.product)
    memory = switch_memory(host, facts)
    new_names = product_names(spec.product)
    old_names = product_names(move.product)
    switch = GatedSwitch(
        profile=profile.name,
        unit=paths.unit,
        unit_file=paths.unit_file,
        content=content,
        config=paths.config,
        check=health_command(spec, profile, paths, new_program),
        rollback_check=health_command(old_spec, profile, paths, old_program),
        from_version=old_label,
        to_version=new,
        start_timeout_s=gateway.start_timeout_s,
        settle_s=gateway.health_window_s,
        memory=memory_dir(home),
        owner=host.user.name,
        state=paths.state,
        replaces=move.unit,
        replaces_file=move.unit_file,
        env_file=paths.token_env,
        env_rename=(old_names.env_prefix, new_names.env_prefix),
        env_token=token_key(spec) if uses_token_file(spec, profile) else None,
        warm_up=warm_up_for(spec, profile, host, facts, content),
    )
    reason = (
        f"profile {profile.name}: product move {old_label} -> {spec.product} {new}: "
        f"{move.unit} is replaced by {paths.unit}, keeping {paths.state} and its "
        f"{paths.config.name}, {paths.token_env.name}'s {old_names.env_prefix}* renamed "
        f"{new_names.env_prefix}* (the same token); if unhealthy within "
        f"{gateway.start_timeout_s:g} s (or crashing within {gateway.health_window_s:g} s "
        f"after): {move.unit} back, state and config byte-identical"
        + (f"; {new} warmed up first while {move.unit} serves" if switch.warm_up else "")
        + (f"; {new}: {COLD_START}" if cold_start(spec, host, facts, content) else "")
    )
    if move.resumed:
        reason = f"an interrupted move of profile {profile.name} is finished; " + reason
    mark = memory.bad_version(profile.name, new)
    blocked = mark.blocked_message() if mark is not None else None
    return Action(
        unit_address(profile.name),
        "update",
        reason,
        (switch,),
        changes=attribute_changes(
            {"product": spec.product, "unit": paths.unit, "state_dir": str(paths.state)},
            {"product": move.product, "unit": move.unit, "state_dir": str(move.state)},
        ),
        blocked=blocked,
        diff=unit_diff(paths.unit_file, move.text, content),
        # The move reloads and starts by itself: the service only enables the new unit.
        triggers=(service_address(profile.name),),
        after=(config_address(profile.name),),
    )

"""Gateway units: one systemd user unit per profile, rendered from the spec, byte for byte.

Wants: `~/.config/systemd/user/<unit>` (the unit name from the product table) running the
gateway command found for the user (absolute path) as `gateway --port <port>`, with
`Environment=` for HOME, PATH (node's directory first, so the npm shim's `#!/usr/bin/env node`
finds the right node under systemd's minimal environment), and the product's PROFILE, STATE_DIR,
CONFIG_PATH and GATEWAY_PORT variables (so `--profile` and the port cannot disagree);
`Restart=always`, `RestartSec=5`, `KillMode=process`, `WantedBy=default.target` (docs/host-facts.md §1),
and stop/start timeouts every restart outlasts (`TimeoutStopSec=30`, core/switch.py).
With `auth: token`, a token is generated once, at apply time, into `<state>/gateway.env` (0600)
and referenced with `EnvironmentFile=`: never in the unit (upstream writes it into the
world-readable unit, a reported bug), never in a plan, never printed.
Probes: the unit file's text (in-process), the gateway and node commands (shared with the
runtime kind), and whether `gateway.env` holds a token (its value is never read into a fact).
Compares: the file's text with the rendering; the token file's presence and mode.
Fixes: `WriteFile` (0644, atomic, backup kept) with a unified diff of the file in the action's
`diff` (secret-looking values of the old file redacted); `EnsureSecretEnv` for the token.
When the gateway is not installed the unit cannot be rendered (ExecStart needs its path): the
action waits for `runtime.gateway` and says so.
With `runtime.gateway.install: versioned` the unit runs its profile's version as the gateway's
own `gateway install` does: `ExecStart="<node>" "<prefix>/<version>/node_modules/<package>/<bin>"
gateway --port N` (gateway/versions.py), known before the version is installed; the write comes
after that version's install (and is skipped when the install fails), and its restart is what
the health-gated switch guards.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from reconciler.core.action import (
    Action,
    ActionKind,
    EnsureSecretEnv,
    KindPlan,
    Operation,
    WriteFile,
)
from reconciler.core.diff import attribute_changes
from reconciler.core.host import HostContext
from reconciler.core.kind import NEEDS_USER, NO_FACTS, Kind, register, spec_user
from reconciler.core.probe import Facts, Probe
from reconciler.core.switch import UNIT_START_TIMEOUT_S, UNIT_STOP_TIMEOUT_S
from reconciler.facts.files import SecretEnvProbe, SecretEnvState, has_value
from reconciler.facts.gateway_versions import versions_probe
from reconciler.facts.profile_files import (
    foreign_owner,
    owner_drift,
    plan_profile_files,
    token_probe,
    unit_probe,
)
from reconciler.facts.systemd import SystemdProbe
from reconciler.gateway.addresses import (
    DAEMON_RELOAD,
    GATEWAY,
    node_version_address,
    service_address,
    state_address,
    unit_address,
    version_address,
)
from reconciler.gateway.node import node_binary, profile_node
from reconciler.gateway.paths import (
    ProfilePaths,
    names,
    placeholder_host,
    profile_paths,
    token_key,
    uses_token_file,
)
from reconciler.gateway.versions import (
    entry_point,
    install_dir,
    prefix_path,
    profile_version,
    version_in_exec,
    versioned,
)
from reconciler.kinds._move import move_probes, plan_move, product_move
from reconciler.kinds._programs import NODE, gateway_program, location_probe, version_probe
from reconciler.kinds._switch import switch_gate, switch_probes
from reconciler.kinds._systemd import (
    HEADER,
    UNIT_MODE,
    UnitRenderError,
    redact,
    systemd_word,
    unit_diff,
)
from reconciler.semver import lowest_version, satisfies
from reconciler.spec.duration import format_duration
from reconciler.spec.model import Profile, Spec

__all__ = [
    "SecretEnvProbe",
    "SecretEnvState",
    "UnitRenderError",
    "has_value",
    "redact",
    "render_unit",
    "systemd_word",
    "token_probe",
    "unit_diff",
    "unit_probe",
]

TOKEN_MODE = 0o600
# Where systemd's minimal PATH would look, after node's and the gateway's own directories.
STANDARD_PATH = ("/usr/local/bin", "/usr/bin", "/bin")


# --- rendering ---------------------------------------------------------------------------------


def unit_path_env(node: str | None, gateway: str, *, gateway_is_dir: bool = False) -> str:
    """PATH for the service: node's directory, the gateway's, then the standard ones."""
    dirs = [os.path.dirname(node)] if node else []
    dirs.append(gateway if gateway_is_dir else os.path.dirname(gateway))
    return ":".join(dict.fromkeys([*dirs, *STANDARD_PATH]))


def render_unit(
    spec: Spec,
    profile: Profile,
    paths: ProfilePaths,
    home: Path,
    gateway: str,
    node: str | None,
    node_entry: tuple[str, str] | None = None,
) -> str:
    """The unit file's exact text (pure, deterministic: the same inputs give the same bytes).

    `node_entry` (node, entry point): a versioned install, run as `<node> <entry>`; `gateway`
    is then the directory of the version's command links (node_modules/.bin), put on PATH.
    """
    table = names(spec)
    env = (
        ("HOME", str(home)),
        ("PATH", unit_path_env(node, gateway, gateway_is_dir=node_entry is not None)),
        (table.env("PROFILE"), profile.name),
        (table.env("STATE_DIR"), str(paths.state)),
        (table.env("CONFIG_PATH"), str(paths.config)),
        (table.env("GATEWAY_PORT"), str(profile.port)),
    )
    program = (gateway,) if node_entry is None else (node_entry[0], node_entry[1])
    exec_start = " ".join(
        systemd_word(w, exec_line=True) for w in (*program, "gateway", "--port", str(profile.port))
    )
    lines = [
        HEADER,
        "[Unit]",
        f"Description={table.command} gateway, profile {profile.name}",
        "After=network-online.target",
        "Wants=network-online.target",
        "",
        "[Service]",
        f"ExecStart={exec_start}",
        *(f"Environment={systemd_word(f'{k}={v}', exec_line=False)}" for k, v in env),
    ]
    if uses_token_file(spec, profile):
        lines.append(f"EnvironmentFile={str(paths.token_env).replace('%', '%%')}")
    lines += [
        "Restart=always",
        "RestartSec=5",
        "KillMode=process",
        # Declared so that a restart (the switch's, the service's) always ends before its
        # deadline: systemd's default stop timeout is 90 s (core/switch.py).
        f"TimeoutStartSec={UNIT_START_TIMEOUT_S}",
        f"TimeoutStopSec={UNIT_STOP_TIMEOUT_S}",
        "",
        "[Install]",
        "WantedBy=default.target",
    ]
    return "\n".join(lines) + "\n"


# --- the kind ----------------------------------------------------------------------------------


@register(50)
class GatewayUnitKind(Kind):
    name = "profile.unit"
    needs = NEEDS_USER

    def placeholders(self, spec: Spec, host: HostContext) -> Iterable[Action]:
        for profile in spec.profiles:
            yield Action(unit_address(profile.name), "create", _reason(spec, profile, host))

    def desired(self, spec: Spec, home: Path) -> Mapping[str, Any]:
        """Every profile's unit: its name and file, what it runs, its environment, its token
        file; the health window of a version switch."""
        host = placeholder_host(spec, home)
        table = names(spec)
        out = {}
        for profile in spec.profiles:
            paths = profile_paths(spec, profile, host)
            out[profile.name] = {
                "auth": profile.auth,
                "unit": paths.unit,
                "unit_file": str(paths.unit_file),
                "exec_start": _desired_exec(spec, profile, home),
                "environment": {
                    table.env("PROFILE"): profile.name,
                    table.env("STATE_DIR"): str(paths.state),
                    table.env("CONFIG_PATH"): str(paths.config),
                    table.env("GATEWAY_PORT"): str(profile.port),
                },
                "environment_file": str(paths.token_env)
                if uses_token_file(spec, profile)
                else None,
            }
        gateway = spec.runtime.gateway
        health = format_duration(int(gateway.health_window_s))
        switches = {"health_window": health, "warm_up": gateway.warm_up}
        return {"runtime": {"gateway": switches}, "profiles": out}

    def discover(self, spec: Spec, host: HostContext) -> Iterable[Probe[Any]]:
        yield location_probe(gateway_program(spec), host)
        yield location_probe(NODE, host)

    def probes(
        self, spec: Spec, host: HostContext, found: Facts = NO_FACTS
    ) -> Iterable[Probe[Any]]:
        yield version_probe(gateway_program(spec), host, found)
        yield version_probe(NODE, host, found)
        yield SystemdProbe()
        yield from switch_probes(spec, host)
        yield from move_probes(spec, host)
        if versioned(spec):
            yield versions_probe(spec, host)
        for profile in spec.profiles:
            paths = profile_paths(spec, profile, host)
            yield unit_probe(paths)
            if uses_token_file(spec, profile):
                yield token_probe(spec, paths)

    def plan(self, spec: Spec, host: HostContext, facts: Facts) -> KindPlan:
        return plan_profile_files(
            spec,
            host,
            facts,
            plan_one=plan_unit,
            address_of=unit_address,
            probe_of=unit_probe,
        )


def _token(
    spec: Spec, profile: Profile, paths: ProfilePaths, user: str, facts: Facts
) -> tuple[EnsureSecretEnv, str] | None:
    """With `auth: token`: the operation that makes `gateway.env` hold a token (0600) and why,
    or None when it does."""
    if not uses_token_file(spec, profile):
        return None
    token = facts.get(token_probe(spec, paths))
    if token.file.kind not in ("missing", "file"):
        raise UnitRenderError(f"{paths.token_env} is {token.file.described}, not a regular file")
    if token.has_key and token.file.mode == TOKEN_MODE:
        return None
    why = (
        f"the gateway token is generated once into {paths.token_env} "
        f"({TOKEN_MODE:04o}, never shown)"
        if not token.has_key
        else f"{paths.token_env} must be {TOKEN_MODE:04o}"
    )
    return EnsureSecretEnv(paths.token_env, token_key(spec), TOKEN_MODE, user), why


def _desired_exec(spec: Spec, profile: Profile, home: Path) -> str:
    """What the unit runs, with node as found on the host left as `node`."""
    version = profile_version(spec, profile)
    if versioned(spec) and version is not None:
        entry = entry_point(spec, prefix_path(spec, home), version)
        pinned = profile_node(spec, profile)
        node = node_binary(home, pinned) if pinned is not None else "node"
        return f"{node} {entry} gateway --port {profile.port}"
    command = spec.runtime.gateway.command or names(spec).command
    return f"{command} gateway --port {profile.port}"


def _reason(spec: Spec, profile: Profile, host: HostContext) -> str:
    return (
        f"profile {profile.name} runs as the user service {profile_paths(spec, profile, host).unit}"
    )


def plan_unit(spec: Spec, profile: Profile, host: HostContext, facts: Facts) -> Action | None:
    """The action that writes one profile's unit (and token file), or None when in sync."""
    paths = profile_paths(spec, profile, host)
    reason = _reason(spec, profile, host)
    found = facts.get(unit_probe(paths))
    kind: ActionKind = "update" if found.exists else "create"
    if versioned(spec):
        return _versioned_unit(spec, profile, host, facts, paths, reason)
    gateway = facts.get(version_probe(gateway_program(spec), host, facts))
    if gateway.path is None:
        return Action(
            unit_address(profile.name),
            kind,
            reason,
            depends_on=(GATEWAY,),
            triggers=(service_address(profile.name),),
            blocked=(
                f"{gateway.detail or 'the gateway is not installed'}: ExecStart needs its "
                "absolute path, so the unit is written on the run after runtime.gateway "
                "installs it"
            ),
        )
    node = facts.get(version_probe(NODE, host, facts)).path
    content = render_unit(spec, profile, paths, spec_user(host).home, gateway.path, node)
    return _unit_action(spec, profile, host, facts, paths, reason, content)


def plan_switch(
    spec: Spec, profile: Profile, host: HostContext, facts: Facts, version: str
) -> Action | None:
    """The unit's action for `profile` running `version`, chosen by hand instead of the one the
    spec pins (`reconciler rollback`): the same unit, health gate and blockers as `plan_unit`'s
    (a versioned install), except that a bad-version mark on `version` does not block it: the
    gate still checks it. None when the unit already runs it."""
    paths = profile_paths(spec, profile, host)
    return _versioned_unit(spec, profile, host, facts, paths, _reason(spec, profile, host), version)


def _versioned_unit(
    spec: Spec,
    profile: Profile,
    host: HostContext,
    facts: Facts,
    paths: ProfilePaths,
    reason: str,
    by_hand: str | None = None,
) -> Action | None:
    """The unit of a versioned install: node runs the profile's version's entry point (the
    spec's pin, or `by_hand`: a version chosen by hand, see `plan_switch`). The node is the
    profile's installed one when it pins one (written after that node's install), else the
    node on the user's PATH."""
    assert host.user is not None
    version = by_hand or profile_version(spec, profile)
    assert version is not None  # validation: a versioned install pins every profile
    pinned = profile_node(spec, profile)
    node = (
        str(node_binary(host.user.home, pinned))
        if pinned is not None
        else facts.get(version_probe(NODE, host, facts)).path
    )
    found = facts.get(unit_probe(paths))
    if node is None:
        return Action(
            unit_address(profile.name),
            "update" if found.exists else "create",
            reason,
            triggers=(service_address(profile.name),),
            blocked="node: not installed (ExecStart runs the version's entry point with node)",
        )
    prefix = prefix_path(spec, host.user.home)
    entry = entry_point(spec, prefix, version)
    bin_dir = str(install_dir(prefix, version) / "node_modules" / ".bin")
    content = render_unit(
        spec, profile, paths, host.user.home, bin_dir, node, node_entry=(node, str(entry))
    )
    action = _unit_action(spec, profile, host, facts, paths, reason, content, by_hand)
    if action is None:
        return None
    engines = _node_mismatch(spec, profile, host, facts, version)
    if engines is not None and action.blocked is None:
        action = replace(action, blocked=engines)
    running = next(
        (
            version_in_exec(line, prefix)
            for line in (found.text or "").splitlines()
            if line.startswith("ExecStart=")
        ),
        None,
    )
    return replace(
        action,
        changes=(
            *action.changes,
            *(
                attribute_changes({"gateway_version": version}, {"gateway_version": running})
                if running != version
                else ()
            ),
        ),
        # Written once its version (and its node) is installed; skipped when that fails.
        after=(
            *action.after,
            version_address(version),
            *((node_version_address(pinned),) if pinned is not None else ()),
        ),
    )


def _node_mismatch(
    spec: Spec, profile: Profile, host: HostContext, facts: Facts, version: str
) -> str | None:
    """Why `profile`'s node cannot run `version` (its package.json `engines.node`), or None.
    Known once the version is installed: a release's engines are in its own package.json
    (openclaw 2026.9.3 on needs node >=24.16.0 <25 || >=26.1.0; docs/host-facts.md §6). The
    profile's node is its pinned one (an exact version, known from the spec) or the node on
    the user's PATH."""
    entry = facts.get(versions_probe(spec, host)).get(version)
    if entry is None or not entry.usable or entry.engines_node is None:
        return None
    pinned = profile_node(spec, profile)
    if pinned is not None:
        node_version: str | None = pinned
        runs = f"node {pinned} (installed)"
    else:
        found = facts.get(version_probe(NODE, host, facts))
        node_version = found.version.lstrip("v") if found.version else None
        runs = f"{found.path} ({found.version}, the node on {spec.host.user}'s PATH)"
    if node_version is None:
        return None
    try:
        if satisfies(node_version, entry.engines_node):
            return None
    except ValueError:
        return None  # a range npm itself would not read: npm's install decided
    package = spec.runtime.gateway.package
    example = lowest_version(entry.engines_node) or "<an exact version that satisfies it>"
    # A canary (its own version or node) gets its own node; else every profile's.
    own = profile.node is not None or profile.gateway_version is not None
    setting = (
        f"profiles.{profile.name}.node: {example}"
        if own
        else (f"runtime.node: {{version: {example}}}")
    )
    return (
        f"{package}@{version} needs node {entry.engines_node} (its package.json engines), "
        f"and profile {profile.name} runs {runs}: set {setting} (the reconciler installs "
        "that node side by side), or pin a release that runs on this node; the gateway "
        "keeps running its current version meanwhile"
    )


def _unit_action(
    spec: Spec,
    profile: Profile,
    host: HostContext,
    facts: Facts,
    paths: ProfilePaths,
    reason: str,
    content: str,
    by_hand: str | None = None,
) -> Action | None:
    """Write the rendered unit (and the token file) when either differs (`by_hand`: the version
    chosen by hand it runs, see `plan_switch`)."""
    assert host.user is not None
    move = product_move(spec, profile, host, facts)
    if move is not None:
        # The unit of the product the spec's succeeds is still there: one reviewed move
        # (kinds/_move.py) writes this unit, renames the env file's variables (the token
        # kept) and replaces that unit, behind the health gate. A gated switch talks to the
        # user's manager: the planner gates it (core/needs.py).
        return plan_move(spec, profile, host, facts, paths, content, move)
    found = facts.get(unit_probe(paths))
    kind: ActionKind = "update" if found.exists else "create"
    operations: list[Operation] = []
    reasons: list[str] = []
    depends: list[str] = []
    token = _token(spec, profile, paths, host.user.name, facts)
    if token is not None:
        operations.append(token[0])
        reasons.append(token[1])
        depends.append(state_address(profile.name))  # kept when the plan creates it
    file_ok = foreign_owner(unit_address(profile.name), found, host) is not None or (
        found.mode == UNIT_MODE and not owner_drift(found, host)
    )
    if found.text != content or not file_ok:
        operations.append(WriteFile(paths.unit_file, content, UNIT_MODE, host.user.name))
        reasons.insert(
            0,
            reason
            if found.text != content
            else f"{paths.unit_file} must be {UNIT_MODE:04o}, owned by {host.user.name}",
        )
    if not operations:
        return switch_gate(spec, profile, host, facts, None, content, by_hand)
    # Writing the token (or a unit into the user's unit directory, which the planner gates on
    # systemd as well) acts as the user: the planner gates it (core/needs.py).
    action = Action(
        unit_address(profile.name),
        kind if found.text != content else "update",
        "; ".join(reasons),
        tuple(operations),
        diff=unit_diff(paths.unit_file, found.text, content) if found.text != content else None,
        # The manager re-reads what is written here, and the running gateway restarts.
        triggers=(service_address(profile.name), DAEMON_RELOAD),
        after=tuple(depends),
    )
    # A running gateway moving to another version: behind the health gate, with rollback.
    return switch_gate(spec, profile, host, facts, action, content, by_hand)

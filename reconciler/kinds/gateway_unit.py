"""Gateway units: one systemd user unit per profile, rendered from the spec, byte for byte.

Wants: `~/.config/systemd/user/<unit>` (the unit name from the product table) running the
gateway command found for the user (absolute path) as `gateway --port <port>`, with
`Environment=` for HOME, PATH (node's directory first, so the npm shim's `#!/usr/bin/env node`
finds the right node under systemd's minimal environment), and the product's PROFILE, STATE_DIR,
CONFIG_PATH and GATEWAY_PORT variables (so `--profile` and the port cannot disagree);
`Restart=always`, `RestartSec=5`, `KillMode=process`, `WantedBy=default.target` (docs/host-facts.md §1).
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
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
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
from reconciler.core.host import HostContext
from reconciler.core.probe import Facts, Probe
from reconciler.facts.codec import FileTextContext, RecordedHost, keeps_file_content, recorded
from reconciler.facts.files import PathProbe, PathState, read_path
from reconciler.gateway.paths import (
    ProfilePaths,
    address,
    foreign_owner,
    names,
    owner_drift,
    plan_profile_files,
    profile_paths,
    user_blocker,
)
from reconciler.kinds.profile_state import ProfileStateKind, plan_state, state_address
from reconciler.kinds.runtime import GATEWAY, gateway_probe, node_probe
from reconciler.spec.model import Profile, Spec

UNIT_MODE = 0o644
TOKEN_MODE = 0o600
# Where systemd's minimal PATH would look, after node's and the gateway's own directories.
STANDARD_PATH = ("/usr/local/bin", "/usr/bin", "/bin")


class UnitRenderError(Exception):
    """A value cannot be written into a unit file (a newline in a path, say)."""


def unit_address(profile: str) -> str:
    return address(profile, "unit")


def unit_probe(paths: ProfilePaths) -> PathProbe:
    """The probe of a profile's unit file (shared with the service kind, which needs its mtime)."""
    return PathProbe(paths.unit_file, content=True)


def token_key(spec: Spec) -> str:
    return names(spec).env("GATEWAY_TOKEN")


# --- the token file: whether it holds a value, never the value itself -------------------------


@recorded
@dataclass(frozen=True)
class SecretEnvState:
    """An env file as far as a plan may know it: type, mode, owner, times, key present."""

    file: PathState
    has_key: bool


def has_value(text: str, key: str) -> bool:
    """Pure: does `text` (KEY=value lines) give `key` a non-empty value?"""
    for line in text.splitlines():
        name, sep, value = line.partition("=")
        if sep and name.strip() == key and value.strip():
            return True
    return False


@recorded
@dataclass(frozen=True)
class SecretEnvProbe(Probe[SecretEnvState]):
    """Reads the file in-process and keeps only whether `key` has a value."""

    path: Path
    key: str

    def read(self, host: HostContext) -> SecretEnvState:
        found = read_path(self.path, content=True)
        present = found.text is not None and has_value(found.text, self.key)
        # Drop the text: the fact must not carry the secret any further.
        stripped = PathState(
            found.path, found.kind, found.mode, found.uid, found.owner, found.mtime, found.ctime
        )
        return SecretEnvState(stripped, present)

    def answer_from(self, recorded: RecordedHost) -> SecretEnvState | None:
        if recorded.known_missing(self.path):
            return SecretEnvState(PathState(self.path, "missing"), False)
        return None


def token_probe(spec: Spec, paths: ProfilePaths) -> SecretEnvProbe:
    return SecretEnvProbe(paths.token_env, token_key(spec))


# --- rendering ---------------------------------------------------------------------------------

_NEEDS_QUOTES = re.compile(r"[\s\"'\\;]")


def systemd_word(value: str, *, exec_line: bool) -> str:
    """One word for ExecStart=/Environment=, quoted and escaped by systemd's rules.

    `%` starts a specifier everywhere (so `%%`); in ExecStart `$` expands a variable (so `$$`).
    Words with whitespace, quotes, backslashes or `;` are double-quoted with C-style escapes.
    """
    if any(c in value for c in "\n\r\0"):
        raise UnitRenderError(f"{value!r} cannot be written into a unit file")
    text = value.replace("%", "%%")
    if exec_line:
        text = text.replace("$", "$$")
    if text and not _NEEDS_QUOTES.search(text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def unit_path_env(node: str | None, gateway: str) -> str:
    """PATH for the service: node's directory, the gateway's, then the standard ones."""
    dirs = [os.path.dirname(p) for p in (node, gateway) if p]
    return ":".join(dict.fromkeys([*dirs, *STANDARD_PATH]))


def render_unit(
    spec: Spec,
    profile: Profile,
    paths: ProfilePaths,
    home: Path,
    gateway: str,
    node: str | None,
) -> str:
    """The unit file's exact text (pure, deterministic: the same inputs give the same bytes)."""
    table = names(spec)
    env = (
        ("HOME", str(home)),
        ("PATH", unit_path_env(node, gateway)),
        (table.env("PROFILE"), profile.name),
        (table.env("STATE_DIR"), str(paths.state)),
        (table.env("CONFIG_PATH"), str(paths.config)),
        (table.env("GATEWAY_PORT"), str(profile.port)),
    )
    exec_start = " ".join(
        systemd_word(w, exec_line=True) for w in (gateway, "gateway", "--port", str(profile.port))
    )
    lines = [
        "# Written by the reconciler from its spec; local edits are replaced on the next apply.",
        "[Unit]",
        f"Description={table.command} gateway, profile {profile.name}",
        "After=network-online.target",
        "Wants=network-online.target",
        "",
        "[Service]",
        f"ExecStart={exec_start}",
        *(f"Environment={systemd_word(f'{k}={v}', exec_line=False)}" for k, v in env),
    ]
    if profile.auth == "token":
        lines.append(f"EnvironmentFile={str(paths.token_env).replace('%', '%%')}")
    lines += [
        "Restart=always",
        "RestartSec=5",
        "KillMode=process",
        "",
        "[Install]",
        "WantedBy=default.target",
    ]
    return "\n".join(lines) + "\n"


_SECRET_NAME = r"[A-Z0-9_]*(?:TOKEN|PASSWORD|SECRET|KEY)[A-Z0-9_]*"
# `"NAME=value with spaces"` (the whole assignment quoted), or `NAME=value` / `NAME="value"`.
_SECRET_ASSIGNMENT = re.compile(
    rf'(?i)"({_SECRET_NAME})=[^"]*"|\b({_SECRET_NAME})=("[^"]*"|[^\s"]+)'
)


def _hide(match: re.Match[str]) -> str:
    if match.group(1) is not None:
        return f'"{match.group(1)}=(sensitive)"'
    return f"{match.group(2)}=(sensitive)"


def redact(line: str) -> str:
    """Hide values of secret-looking variables (an upstream unit holds the token in clear)."""
    return _SECRET_ASSIGNMENT.sub(_hide, line)


@keeps_file_content
def _unit_file_text(
    context: FileTextContext, path: Path, text: str
) -> tuple[str | None, str | None] | None:
    """Snapshots keep a unit file's every line, secret-looking values masked: the rule of the
    unit diff, so the diff planned against a snapshot is the one planned on the host."""
    if path.suffix in (".service", ".timer"):
        return context.text(text), None
    return None


def unit_diff(path: Path, before: str | None, after: str) -> str:
    """A unified diff of the unit file, old secrets redacted."""
    old = [redact(line) for line in (before or "").splitlines(keepends=True)]
    return "".join(
        difflib.unified_diff(
            old,
            after.splitlines(keepends=True),
            fromfile=str(path) if before is not None else "/dev/null",
            tofile=str(path),
        )
    )


# --- the kind ----------------------------------------------------------------------------------


class GatewayUnitKind:
    name = "profile.unit"

    def probes(self, spec: Spec, host: HostContext) -> Iterable[Probe[Any]]:
        yield gateway_probe(spec, host)
        yield node_probe(host)
        if host.user is None:
            return
        yield from ProfileStateKind().probes(spec, host)  # the token file lives in the state root
        for profile in spec.profiles:
            paths = profile_paths(spec, profile, host)
            yield unit_probe(paths)
            if profile.auth == "token":
                yield token_probe(spec, paths)

    def plan(self, spec: Spec, host: HostContext, facts: Facts) -> KindPlan:
        return plan_profile_files(
            spec,
            host,
            facts,
            plan_one=plan_unit,
            address_of=unit_address,
            probe_of=unit_probe,
            unreadable=UnitRenderError,
        )


def plan_unit(spec: Spec, profile: Profile, host: HostContext, facts: Facts) -> Action | None:
    """The action that writes one profile's unit (and token file), or None when in sync."""
    paths = profile_paths(spec, profile, host)
    reason = f"profile {profile.name} runs as the user service {paths.unit}"
    if host.user is None:
        return Action(unit_address(profile.name), "create", reason, blocked=user_blocker(host))
    gateway = facts.get(gateway_probe(spec, host))
    found = facts.get(unit_probe(paths))
    kind: ActionKind = "update" if found.exists else "create"
    if gateway.path is None:
        return Action(
            unit_address(profile.name),
            kind,
            reason,
            depends_on=(GATEWAY,),
            blocked=(
                f"{gateway.detail or 'the gateway is not installed'}: ExecStart needs its "
                "absolute path, so the unit is written on the run after runtime.gateway "
                "installs it"
            ),
        )
    node = facts.get(node_probe(host)).path
    content = render_unit(spec, profile, paths, host.user.home, gateway.path, node)
    operations: list[Operation] = []
    reasons: list[str] = []
    depends: list[str] = []
    if profile.auth == "token":
        token = facts.get(token_probe(spec, paths))
        if token.file.kind not in ("missing", "file"):
            raise UnitRenderError(
                f"{paths.token_env} is {token.file.described}, not a regular file"
            )
        if not token.has_key or token.file.mode != TOKEN_MODE:
            operations.append(
                EnsureSecretEnv(paths.token_env, token_key(spec), TOKEN_MODE, host.user.name)
            )
            reasons.append(
                f"the gateway token is generated once into {paths.token_env} "
                f"({TOKEN_MODE:04o}, never shown)"
                if not token.has_key
                else f"{paths.token_env} must be {TOKEN_MODE:04o}"
            )
            if plan_state(paths, host, facts)[0] is not None:
                depends.append(state_address(profile.name))
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
        return None
    return Action(
        unit_address(profile.name),
        kind if found.text != content else "update",
        "; ".join(reasons),
        tuple(operations),
        depends_on=tuple(depends),
        blocked=user_blocker(host),
        diff=unit_diff(paths.unit_file, found.text, content) if found.text != content else None,
    )

"""Plans made in code, for golden files and renderer tests: a spec plus a snapshot of a host.

A scenario's host is a `Snapshot` built here (no fake host, no subprocess): the few facts that
matter are given, everything else follows from the snapshot's derivations (an empty home means
every profile path is missing, a unit directory without a file means the unit is not loaded).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from reconciler.app.plan_pass import Probed, plan_from_facts
from reconciler.core.host import Account, HostContext
from reconciler.core.probe import Probe
from reconciler.facts.files import DirectoryListing, PathProbe, PathState
from reconciler.facts.listeners import Listener
from reconciler.facts.programs import ProgramVersion, ProgramVersionProbe
from reconciler.facts.sudo_check import SudoProbe, SudoVerdict
from reconciler.facts.systemd import UnitStatus, UnitStatusProbe, unreachable
from reconciler.facts.tailscale import (
    ServeConfig,
    ServeStatusProbe,
    TailscalePrefs,
    TailscalePrefsProbe,
    TailscaleStatus,
    TailscaleStatusProbe,
    parse_serve_config,
)
from reconciler.gateway.paths import profile_paths, unit_dir
from reconciler.kinds import all_kinds
from reconciler.kinds.gateway_config import compare, render_config, served
from reconciler.kinds.gateway_service import binary_probe
from reconciler.kinds.gateway_unit import SecretEnvState, render_unit, token_probe, unit_probe
from reconciler.kinds.legacy_units import directory_probe
from reconciler.kinds.linger import LingerProbe
from reconciler.render.plan_context import PlanContext, SnapshotSource, plan_context
from reconciler.review.snapshot import DirectoryNames, Snapshot, SnapshotFacts
from reconciler.shell.runner import ReadOnlyRunner
from reconciler.spec.loader import load_spec_text
from reconciler.spec.model import Spec
from reconciler.spec.naming import GATEWAY_UNIT_PREFIXES

HOME = Path("/home/user")
USER = Account("user", 1000, 1000, HOME)
ROOT = Account("root", 0, 0, Path("/root"))
DNS = "vm102.tail1234.ts.net"
PIN = "2026.1.24-3"
GATEWAY = f"{HOME}/.npm-global/bin/clawdbot"
NODE = "/usr/bin/node"
NPM = "/usr/bin/npm"
RECORDED_AT = "2026-01-26T10:00:00+00:00"
CHANGED_S = 1_769_000_000.0  # files last changed ...
STARTED_S = 1_769_000_100.0  # ... before the gateways started

SPEC_TEXT = f"""\
apiVersion: reconciler/v1
host:
  name: vm102
  user: user
runtime:
  node: ">=22.12"
  gateway:
    package: clawdbot
    version: "{PIN}"
linger: true
tailscale:
  operator: user
  serve:
    - https: 443
      profile: personal
profiles:
  ops:
    port: 18809
    auth: token
  personal:
    port: 18789
"""


def spec_from(text: str, path: str = "specs/vm102.yaml") -> Spec:
    return replace(load_spec_text(text, path), path=Path(path))


def host_of(invoker: Account) -> HostContext:
    return HostContext(
        hostname="vm102",
        invoker=invoker,
        user=USER,
        user_name="user",
        search_path=("/usr/local/bin", "/usr/bin", "/bin"),
        privileged=invoker.uid == 0,
    )


def snapshot(
    host: HostContext,
    facts: dict[Probe[Any], Any],
    *,
    programs: dict[str, str | None],
    units: Iterable[str] = (),
    listeners: tuple[Listener, ...] = (),
    home_names: tuple[str, ...] = (),
) -> Snapshot:
    """A snapshot of `host`: `units` are the files in the user's unit directory."""
    names = tuple(sorted(units))
    directories = (
        DirectoryNames(HOME, True, home_names, (".clawdbot", ".config", ".openclaw", "clawd")),
        DirectoryNames(HOME / ".config", True, ("systemd",) if names else (), ("systemd",)),
        DirectoryNames(HOME / ".config/systemd", bool(names), ("user",) if names else ()),
        DirectoryNames(
            unit_dir(host),
            bool(names),
            names,
            (*GATEWAY_UNIT_PREFIXES, "reconciler.", "reconciler-backup."),
        ),
    )
    return Snapshot(
        recorded_at=RECORDED_AT,
        spec_path="specs/vm102.yaml",
        spec_sha256="0" * 64,
        host=host,
        programs=tuple(sorted(programs.items())),
        directories=directories,
        listeners=listeners,
        facts=facts,
    )


def tailscale(
    serve: dict[str, Any] | None = None, operator: str | None = None
) -> dict[Probe[Any], Any]:
    return {
        TailscaleStatusProbe(): TailscaleStatus(
            "ok", "BackendState Running", "Running", DNS, https_enabled=True
        ),
        ServeStatusProbe(): parse_serve_config(serve) if serve else ServeConfig("ok"),
        TailscalePrefsProbe(): TailscalePrefs("ok", operator=operator),
    }


def converged_profile(
    spec: Spec, name: str, host: HostContext, pid: int
) -> tuple[dict[Probe[Any], Any], Listener]:
    """Facts of a profile in sync: directories, config, unit (and token), service running."""
    profile = spec.profile(name)
    paths = profile_paths(spec, profile, host)

    def directory(path: Path) -> PathState:
        return PathState(path, "directory", 0o700, 1000, "user", CHANGED_S, CHANGED_S)

    config = render_config(compare({}, profile, "", proxied=served(spec, profile)).merged)
    unit = render_unit(spec, profile, paths, HOME, GATEWAY, NODE)
    facts: dict[Probe[Any], Any] = {
        PathProbe(paths.state): directory(paths.state),
        PathProbe(paths.credentials): directory(paths.credentials),
        PathProbe(paths.workspace): directory(paths.workspace),
        PathProbe(paths.config, content=True): PathState(
            paths.config, "file", 0o600, 1000, "user", CHANGED_S, CHANGED_S, config
        ),
        unit_probe(paths): PathState(
            paths.unit_file, "file", 0o644, 1000, "user", CHANGED_S, CHANGED_S, unit
        ),
        UnitStatusProbe(paths.unit): UnitStatus(
            paths.unit,
            load_state="loaded",
            active_state="active",
            sub_state="running",
            unit_file_state="enabled",
            active_enter_s=STARTED_S,
            main_pid=pid,
        ),
    }
    if profile.auth == "token":
        token = PathState(paths.token_env, "file", 0o600, 1000, "user", CHANGED_S, CHANGED_S)
        facts[token_probe(spec, paths)] = SecretEnvState(token, True)
    listener = Listener("127.0.0.1", profile.port, 1000, 9000 + pid, pid, f"{GATEWAY} gateway")
    return facts, listener


def runtime_installed() -> dict[Probe[Any], Any]:
    return {
        ProgramVersionProbe("node", NODE): ProgramVersion(NODE, "v22.12.0"),
        ProgramVersionProbe("clawdbot", GATEWAY): ProgramVersion(GATEWAY, PIN),
        binary_probe(GATEWAY): PathState(
            Path(GATEWAY), "file", 0o755, 1000, "user", CHANGED_S, CHANGED_S
        ),
    }


@dataclass(frozen=True)
class Scenario:
    """A spec and a snapshot; `source` says how the plan's context presents it."""

    name: str
    spec: Spec
    snapshot: Snapshot
    source: SnapshotSource | None = None

    def probed(self) -> Probed:
        facts = SnapshotFacts(self.snapshot)
        return plan_from_facts(
            self.spec, facts.host, all_kinds(), facts.collect, self.snapshot.recorded_at
        )

    def runner(self) -> ReadOnlyRunner:
        return ReadOnlyRunner(self.snapshot.host_context(), env={})

    def context(self, probed: Probed) -> PlanContext:
        return plan_context(self.spec, self.snapshot.host_context(), probed.probed_at, self.source)


def fresh_host() -> Scenario:
    """Nothing installed but node; no linger; sudo allows all but `npm install -g`."""
    spec = spec_from(SPEC_TEXT)
    host = host_of(USER)
    npm = (NPM, "install", "-g", f"clawdbot@{PIN}")
    facts: dict[Probe[Any], Any] = {
        ProgramVersionProbe("node", NODE): ProgramVersion(NODE, "v22.12.0"),
        LingerProbe("user"): False,
        UnitStatusProbe("clawdbot-gateway-ops.service"): unreachable(
            "clawdbot-gateway-ops.service",
            "the user's systemd manager is not running (no linger and no login session: "
            "`Failed to connect to bus`)",
        ),
        SudoProbe(("loginctl", "enable-linger", "user")): SudoVerdict(True),
        # Refused for a command with an absolute path: the sudoers hint then names it as is.
        SudoProbe(npm): SudoVerdict(False, "a password is required"),
        SudoProbe(("tailscale", "set", "--operator=user")): SudoVerdict(True),
        **tailscale(),
    }
    programs = {"node": NODE, "npm": NPM, "docker": None, "clawdbot": None, "openclaw": None}
    return Scenario("fresh-host", spec, snapshot(host, facts, programs=programs))


def public_exposure() -> Scenario:
    """Gateways in sync; Funnel on 443, an unmanaged serve pruned, a legacy unit pruned."""
    text = SPEC_TEXT.replace("  serve:\n", "  prune: true\n  serve:\n").replace(
        "    port: 18789\n", "    port: 18789\n    prune: true\n"
    )
    spec = spec_from(text)
    host = host_of(ROOT)
    facts: dict[Probe[Any], Any] = {**runtime_installed(), LingerProbe("user"): True}
    listeners = []
    for pid, name in ((4242, "ops"), (4343, "personal")):
        more, listener = converged_profile(spec, name, host, pid)
        facts.update(more)
        listeners.append(listener)
    legacy_text = (
        "[Service]\nExecStart=/usr/bin/node /x/entry.js gateway --port 18789\n"
        "Environment=CLAWDBOT_GATEWAY_TOKEN=(sensitive)\n"
    )
    owned = ("clawdbot-gateway-ops.service", "clawdbot-gateway-personal.service")
    texts = {u: facts[PathProbe(unit_dir(host) / u, content=True)].text for u in owned}
    texts["clawdbot-gateway.service"] = legacy_text
    entries = tuple(
        PathState(unit_dir(host) / u, "file", 0o644, 1000, "user", CHANGED_S, CHANGED_S, t)
        for u, t in sorted(texts.items())
    )
    facts[directory_probe(host)] = DirectoryListing(unit_dir(host), True, entries)
    facts[UnitStatusProbe("clawdbot-gateway.service")] = UnitStatus(
        "clawdbot-gateway.service",
        load_state="loaded",
        active_state="inactive",
        unit_file_state="disabled",
    )
    serve = {
        "TCP": {"443": {"HTTPS": True}, "8443": {"HTTPS": True}},
        "Web": {
            f"{DNS}:443": {"Handlers": {"/": {"Proxy": "http://127.0.0.1:18789"}}},
            f"{DNS}:8443": {"Handlers": {"/": {"Proxy": "http://127.0.0.1:3000"}}},
        },
        "AllowFunnel": {f"{DNS}:443": True},
        "Foreground": {"abc123": {"AllowFunnel": {f"{DNS}:10000": True}}},
    }
    facts.update(tailscale(serve, operator="user"))
    snap = snapshot(
        host,
        facts,
        programs={"node": NODE, "npm": NPM, "docker": None, "clawdbot": GATEWAY, "openclaw": None},
        units=[e.path.name for e in entries],
        listeners=tuple(listeners),
        home_names=(
            ".clawdbot-ops",
            ".clawdbot-personal",
            ".config",
            "clawd-ops",
            "clawd-personal",
        ),
    )
    source = SnapshotSource("snapshots/vm102.json", "f" * 64, RECORDED_AT)
    return Scenario("public-exposure", spec, snap, source)


def in_sync() -> Scenario:
    """Everything as the spec says: the plan is empty."""
    spec = spec_from(SPEC_TEXT)
    host = host_of(USER)
    facts: dict[Probe[Any], Any] = {**runtime_installed(), LingerProbe("user"): True}
    listeners = []
    for pid, name in ((4242, "ops"), (4343, "personal")):
        more, listener = converged_profile(spec, name, host, pid)
        facts.update(more)
        listeners.append(listener)
    units = ["clawdbot-gateway-ops.service", "clawdbot-gateway-personal.service"]
    facts[directory_probe(host)] = DirectoryListing(
        unit_dir(host),
        True,
        tuple(facts[PathProbe(unit_dir(host) / u, content=True)] for u in units),
    )
    serve = {
        "TCP": {"443": {"HTTPS": True}},
        "Web": {f"{DNS}:443": {"Handlers": {"/": {"Proxy": "http://127.0.0.1:18789"}}}},
    }
    facts.update(tailscale(serve, operator="user"))
    snap = snapshot(
        host,
        facts,
        programs={"node": NODE, "npm": NPM, "docker": None, "clawdbot": GATEWAY, "openclaw": None},
        units=units,
        listeners=tuple(listeners),
        home_names=(
            ".clawdbot-ops",
            ".clawdbot-personal",
            ".config",
            "clawd-ops",
            "clawd-personal",
        ),
    )
    return Scenario("in-sync", spec, snap)


SCENARIOS = {s.name: s for s in (fresh_host(), public_exposure(), in_sync())}

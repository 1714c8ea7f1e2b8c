"""The laws that define a reconciler, as hypothesis properties over generated specs and hosts.

Every example builds a fresh fake host in a generated state, then drives the real engine (probes,
planner, runner over `sh`, file operations) against it:

- after apply, the next plan has nothing left to run;
- a second apply runs no mutating command;
- a dry run runs no mutating command and leaves the host byte-identical;
- with any one injected failure, the next apply converges (a failed install is remembered and
  blocked until `update --retry`, which the law checks and then does, as a human would).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import engine_on_fakehost as drive
import pytest
from click.testing import CliRunner
from fakehost import FakeHost
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from reconciler import cli as cli_module
from reconciler.app.context import AppContext
from reconciler.facts.switches import memory_dir
from reconciler.gateway.versions import MARKER, versioned
from reconciler.shell.install import forget_install
from reconciler.spec.model import (
    Backup,
    GatewayRuntime,
    Host,
    Node,
    Profile,
    Reconcile,
    Runtime,
    ServeEntry,
    Spec,
    Tailscale,
    Timer,
)
from reconciler.system.as_user import acting_account, call_as

PIN = "2026.1.24-3"
PROFILES = (Profile("ops", 18809), Profile("personal", 18789))
TOKEN_PROFILES = (Profile("ops", 18809, auth="token"), Profile("personal", 18789))
SERVE_CHOICES = (
    ServeEntry(443, profile="personal"),
    ServeEntry(8443, profile="ops"),
    ServeEntry(10443, target="http://127.0.0.1:3000"),
)


@dataclass(frozen=True)
class HostState:
    """A generated starting point for the fake host."""

    invoker: str
    sudo: bool
    tailscale_installed: bool
    daemon: bool
    backend_state: str
    https: bool
    operator: str | None
    serve: tuple[tuple[int, str], ...]
    funnel: tuple[int, ...]
    empty_style_null: bool
    linger: bool
    node: str | None
    gateway: str | None
    # under ~/.local/lib/clawdbot: a complete older version, and/or a killed install's leftover
    prefix_entries: tuple[str, ...] = ()
    restic: bool = False
    password_file: bool = False


# Versioned installs (runtime.gateway.install: versioned): None = the global install; else
# (keep, the version `ops` runs as a canary or None). The fake registry has both versions.
VERSIONED = st.sampled_from([None, (1, None), (0, "2026.1.23"), (1, "2026.1.23")])
REGISTRY = {
    "clawdbot": {PIN: "needs:strip-ansi", "2026.1.23": "ok", "2026.1.22": "ok"},
    "strip-ansi": {"7.1.2": "ok"},
    "libsignal": {"6.0.0": "ok"},
    "node": {"24.21.0": "ok"},
}


BACKUPS = (
    None,
    Backup("~/backups/gateway", "~/.config/restic/password", "6h", 6 * 3600),
    Backup("~/backups/gateway", "~/.config/restic/password", "daily", profiles=("ops",)),
)


def _gateway(pin, versioned):  # type: ignore[no-untyped-def]
    if versioned is None:
        return GatewayRuntime("clawdbot", version=pin)
    return GatewayRuntime(
        "clawdbot",
        version=PIN,
        install="versioned",
        keep=versioned[0],
        extra=(("strip-ansi", "^7.1.0"),),
        overrides=(("libsignal", "npm:libsignal@6.0.0"),),
    )


def _spec(
    linger, ts, operator, serve, prune, node, pin, profiles, timer, command, versioned, backup=None
):  # type: ignore[no-untyped-def]
    if versioned is not None and versioned[1] is not None:
        profiles = tuple(
            replace(p, gateway_version=versioned[1]) if p.name == "ops" else p for p in profiles
        )
    if node.version is not None and versioned is None:
        node = Node()  # validation: an installed node needs versioned installs
    names = {p.name for p in profiles}
    # A serve entry may only name a profile the spec has (validation guarantees that).
    serve = tuple(e for e in serve if e.profile is None or e.profile in names)
    return Spec(
        host=Host("vm102", "user"),
        runtime=Runtime(node=node, gateway=_gateway(pin, versioned)),
        profiles=profiles,
        linger=linger,
        tailscale=Tailscale(operator=operator, serve=serve, prune=prune) if ts else None,
        reconcile=Reconcile(timer=Timer(enabled=timer), command=command),
        # A backup of a profile the spec lacks is refused by validation.
        backup=backup if backup is None or set(backup.profiles or ()) <= names else None,
        path=Path("/srv/hostspec/vm102.yaml"),
    )


specs = st.builds(
    _spec,
    linger=st.sampled_from([True, False, None]),
    ts=st.booleans(),
    operator=st.sampled_from(["user", None]),
    serve=st.lists(st.sampled_from(SERVE_CHOICES), unique_by=lambda e: e.https).map(tuple),
    prune=st.booleans(),
    # The range form checks the host's node; a pin installs one (versioned installs only).
    node=st.sampled_from([Node(range=">=22.12"), Node(), Node(version="24.21.0")]),
    pin=st.sampled_from([PIN, None]),
    profiles=st.sampled_from([PROFILES, PROFILES[:1], PROFILES[1:], TOKEN_PROFILES]),
    timer=st.booleans(),
    # None: the interpreter running the tests, a scratch one (a clone, /tmp): the timer is blocked.
    command=st.sampled_from([None, ("/opt/reconciler/bin/reconciler",)]),
    versioned=VERSIONED,
    backup=st.sampled_from(BACKUPS),
)

targets = st.sampled_from(
    [
        "http://127.0.0.1:18789",
        "http://127.0.0.1:18809",
        "http://localhost:18789",
        "http://127.0.0.1:9999",
    ]
)

host_states = st.builds(
    HostState,
    invoker=st.sampled_from(["user", "root"]),
    sudo=st.booleans(),
    tailscale_installed=st.booleans(),
    daemon=st.booleans(),
    backend_state=st.sampled_from(["Running", "Running", "NeedsLogin"]),
    https=st.booleans(),
    operator=st.sampled_from([None, "user", "bob"]),
    serve=st.lists(
        st.tuples(st.sampled_from([443, 8443, 9443, 10443]), targets), unique_by=lambda t: t[0]
    ).map(tuple),
    funnel=st.lists(st.sampled_from([443, 8443]), unique=True).map(tuple),
    empty_style_null=st.booleans(),
    linger=st.booleans(),
    node=st.sampled_from(["v22.12.0", "v24.1.0", "v20.11.1", None]),
    gateway=st.sampled_from([PIN, "2026.1.20", None]),
    prefix_entries=st.sampled_from(
        [(), ("2026.1.22",), (".install-2026.1.23-0123abcd",), ("2026.1.22", ".install-x-00ff00ff")]
    ),
    restic=st.booleans(),
    password_file=st.booleans(),
)


@contextmanager
def fake_host(state: HostState) -> Iterator[FakeHost]:
    with tempfile.TemporaryDirectory(prefix="laws-") as tmp, FakeHost(Path(tmp)) as fake:
        fake.allow_sudo(state.sudo)
        fake.set_tailscale(
            installed=state.tailscale_installed,
            daemon=state.daemon,
            backend_state=state.backend_state,
            https=state.https,
        )
        fake.set_operator(state.operator)
        dns = fake.dns_name
        config: dict[str, Any] | None = None
        if state.serve:
            config = {
                "TCP": {str(p): {"HTTPS": True} for p, _ in state.serve},
                "Web": {f"{dns}:{p}": {"Handlers": {"/": {"Proxy": t}}} for p, t in state.serve},
                "AllowFunnel": {f"{dns}:{p}": True for p in state.funnel if p in dict(state.serve)},
            }
        fake.set_serve_config(config if config or state.empty_style_null else {})
        fake.set_linger("user", state.linger)
        fake.set_node(state.node)
        fake.set_gateway(state.gateway)
        fake.set_npm_registry(REGISTRY)
        _prefix_entries(fake.home / ".local/lib/clawdbot", state.prefix_entries)
        fake.set_restic(state.restic)
        if state.password_file:
            password = fake.home / ".config/restic/password"
            password.parent.mkdir(parents=True)
            password.write_text("law-password\n")
            password.chmod(0o600)
        yield fake


def _prefix_entries(prefix: Path, names: tuple[str, ...]) -> None:
    """Versions installed by an earlier run (complete, marker last) and killed installs."""
    for name in names:
        package = prefix / name / "node_modules/clawdbot"
        package.mkdir(parents=True)
        if not name.startswith("."):
            (package / "package.json").write_text(json.dumps({"name": "clawdbot", "version": name}))
            (prefix / name / MARKER).write_text(name + "\n")


def _engines_unmet(spec: Spec, state: HostState) -> bool:
    """The spec installs clawdbot side by side and the host's node is below its engines
    (`>=22.12.0`, tests/fakehost/bin/npm)."""
    return versioned(spec) and state.node == "v20.11.1"


def runnable(fake: FakeHost, spec: Spec, host: Any) -> list[str]:
    return [a.address for a in drive.plan(fake, spec, host).runnable]


# Minutes of CPU in CI (200 examples, dozens of fake tools each): started first by `make fast`,
# each law on a worker of its own (tests/conftest.py).
@pytest.mark.long
@given(spec=specs, state=host_states)
def test_after_apply_the_next_plan_is_empty_and_a_second_apply_mutates_nothing(
    spec: Spec, state: HostState
) -> None:
    # A node below the release's engines: its install is refused once, then remembered and
    # blocked (tests/kinds/test_switch_gate.py); not a host these laws converge.
    assume(not _engines_unmet(spec, state))
    with fake_host(state) as fake:
        host = drive.host_context(fake, state.invoker)
        first = drive.apply(fake, spec, host)
        failed = [
            (o.action.address, o.detail)
            for p in first.passes
            for o in p.outcomes
            if o.outcome == "failed"
        ]
        assert failed == []
        assert runnable(fake, spec, host) == []
        fake.clear_calls()
        second = drive.apply(fake, spec, host)
        assert second.passes == []  # nothing runnable: not even a pass
        assert fake.mutating_calls() == []


@given(spec=specs, state=host_states)
def test_a_dry_run_mutates_nothing_and_leaves_the_host_byte_identical(
    spec: Spec, state: HostState
) -> None:
    with fake_host(state) as fake:
        host = drive.host_context(fake, state.invoker)
        before = fake.snapshot()
        fake.clear_calls()
        result = _cli_dry_run(fake, spec, host)
        assert result.exit_code == 0, result.output
        assert "Dry run: no command was run that changes the host." in result.output
        assert fake.mutating_calls() == []
        assert fake.snapshot() == before


# Always tried: the first mutating call is the versioned install's npm (it fails, is remembered).
@example(
    spec=_spec(True, False, None, (), False, Node(), PIN, PROFILES[:1], False, None, (1, None)),
    state=HostState(
        "user", True, False, False, "Running", False, None, (), (), False, True, "v22.12.0", None
    ),
    nth=1,
)
# The same as root: the memory is the user's, forgotten as the user (as `update --retry` does).
@example(
    spec=_spec(True, False, None, (), False, Node(), PIN, PROFILES[:1], False, None, (1, None)),
    state=HostState(
        "root", False, False, False, "Running", False, None, (), (), False, True, "v22.12.0", None
    ),
    nth=1,
)
@pytest.mark.long
@given(spec=specs, state=host_states, nth=st.integers(min_value=1, max_value=12))
def test_any_single_failure_is_recovered_by_the_next_apply(
    spec: Spec, state: HostState, nth: int
) -> None:
    # A node below the release's engines is a lasting refusal, not a single failure.
    assume(not _engines_unmet(spec, state))
    with fake_host(state) as fake:
        host = drive.host_context(fake, state.invoker)
        fake.fail_mutating_call(nth)
        first = drive.apply(fake, spec, host)  # may fail somewhere: that is the point
        _retry_failed_installs(fake, spec, host, first)
        second = drive.apply(fake, spec, host)
        assert second.ok, [(o.action.address, o.detail) for p in second.passes for o in p.outcomes]
        assert runnable(fake, spec, host) == []


def _retry_failed_installs(fake: FakeHost, spec: Spec, host: Any, first: Any) -> None:
    """A failed install is remembered and not tried again by the timer (issue 21): the next
    plan blocks it with the `update --retry` fix, which is what a human does next."""
    failed = [
        o.action.address
        for p in first.passes
        for o in p.outcomes
        if o.outcome == "failed" and o.action.address.startswith("gateway.version[")
    ]
    if not failed:
        return
    blocked = {a.address: a.blocked or "" for a in drive.plan(fake, spec, host).actions}
    for address in failed:
        assert "failed to install" in blocked[address], (address, blocked.get(address))
        assert "reconciler update SPEC --retry" in blocked[address]
        version = address.removeprefix("gateway.version[")[:-1]
        # As `update --retry` does (app/updates.py): as the spec's user when root runs it.
        call_as(acting_account(host), partial(forget_install, memory_dir(fake.home), version))


def _cli_dry_run(fake: FakeHost, spec: Spec, host: Any) -> Any:
    """`reconciler apply --dry-run` through the real CLI, with the spec and host injected."""
    app = AppContext(
        spec_loader=lambda path: spec,
        discover_host=lambda s: host,
        make_runner=lambda h, mutating: (
            drive.host_runner(fake, h) if mutating else drive.read_only_runner(fake, h)
        ),
    )
    return CliRunner().invoke(
        cli_module.cli, ["apply", "spec.yaml", "--dry-run", "--host-check=off"], obj=app
    )


@settings(max_examples=1)
@given(st.just(None))
def test_the_fake_host_counts_mutations(_: None) -> None:
    # Guards the laws above against a fake that never reports a mutation.
    state = HostState(
        "user", True, True, True, "Running", True, None, (), (), False, False, "v22.12.0", PIN
    )
    spec = Spec(Host("vm102", "user"), Runtime(Node(), GatewayRuntime("clawdbot")), PROFILES[:1])
    with fake_host(state) as fake:
        host = drive.host_context(fake, "user")
        fake.clear_calls()
        drive.apply(fake, spec, host)
        assert any(c["argv"][:2] == ["loginctl", "enable-linger"] for c in fake.mutating_calls())

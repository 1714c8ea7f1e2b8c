"""Profile state roots and workspaces: facts in, actions out; then on the fake host."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path

import pytest

from reconciler.app.plan_pass import plan_from_facts
from reconciler.core.action import EnsureDirectory
from reconciler.core.host import HostContext
from reconciler.core.kind import unmet_need
from reconciler.core.plan import build_plan
from reconciler.core.probe import Facts
from reconciler.facts.files import PathProbe, PathState
from reconciler.kinds.profile_state import ProfileStateKind
from reconciler.spec.model import Profile

from .gateway_host import GatewayHost, addresses, gateway_spec
from .helpers import ROOT, USER, facts, make_host

STATE = Path("/home/user/.clawdbot-ops")
CREDS = STATE / "credentials"
WORK = Path("/home/user/clawd-ops")
SPEC = gateway_spec(Profile("ops", 18809))


def d(path: Path, mode: int = 0o700, uid: int = 1000) -> PathState:
    return PathState(path, "directory", mode, uid, "user" if uid == 1000 else "root")


def missing(path: Path) -> PathState:
    return PathState(path, "missing")


def plan(state: PathState, creds: PathState, work: PathState, **host_kw):  # type: ignore[no-untyped-def]
    values = {PathProbe(STATE): state, PathProbe(CREDS): creds, PathProbe(WORK): work}
    return ProfileStateKind().plan(SPEC, make_host(**host_kw), facts(values))


# (state, credentials, workspace) -> {address: (kind, [paths ensured])}
CASES = {
    "empty host": (
        missing(STATE),
        missing(CREDS),
        missing(WORK),
        {
            "profile[ops].state": ("create", [STATE, CREDS]),
            "profile[ops].workspace": ("create", [WORK]),
        },
    ),
    "in sync": (d(STATE), d(CREDS), d(WORK, 0o755), {}),
    "state too open": (
        d(STATE, 0o755),
        d(CREDS),
        d(WORK),
        {"profile[ops].state": ("update", [STATE])},
    ),
    "credentials missing": (
        d(STATE),
        missing(CREDS),
        d(WORK),
        {"profile[ops].state": ("update", [CREDS])},
    ),
    "workspace kept as it is": (d(STATE), d(CREDS), d(WORK, 0o777), {}),
}


@pytest.mark.parametrize("case", CASES)
def test_plan_as_data(case: str) -> None:
    state, creds, work, expected = CASES[case]
    result = plan(state, creds, work)
    assert not result.errors
    got = {
        a.address: (a.kind, [op.path for op in a.operations if isinstance(op, EnsureDirectory)])
        for a in result.actions
    }
    assert got == expected
    for action in result.actions:
        assert all(op.mode == 0o700 and op.owner == "user" for op in action.operations)  # type: ignore[union-attr]


@pytest.mark.parametrize("where", ["state", "credentials"])
def test_root_never_takes_over_a_directory_someone_else_owns(where: str) -> None:
    # Root could chown it to the user, and did before issue 11: a spec naming /etc, another
    # user's home or a link the user planted turned root against the machine. Now a plan error.
    state = d(STATE, 0o755, uid=0) if where == "state" else d(STATE)
    creds = d(CREDS, 0o700, uid=1001) if where == "credentials" else d(CREDS)
    as_root = plan(state, creds, d(WORK), invoker=ROOT)
    assert as_root.actions == ()
    (error,) = as_root.errors
    path = STATE if where == "state" else CREDS
    assert error.startswith(f"profile[ops].state: {path} exists and belongs to ")
    assert "refusing to take it over" in error and "chown it to user yourself" in error
    # not root: no action that cannot succeed, a warning instead (mode left alone too)
    as_user = plan(d(STATE, 0o755, uid=0), d(CREDS), d(WORK))
    assert as_user.actions == ()
    (finding,) = as_user.findings
    assert finding.severity == "warning" and "belongs to root" in finding.message


@pytest.mark.parametrize("kind", ["symlink", "file", "other"])
def test_not_a_directory_is_an_error_never_followed(kind: str) -> None:
    odd = PathState(STATE, kind, 0o777, 1000, "user")  # type: ignore[arg-type]
    result = plan(odd, missing(CREDS), PathState(WORK, kind, 0o777, 1000, "user"))  # type: ignore[arg-type]
    assert result.actions == ()
    assert len(result.errors) == 2
    assert all(str(STATE) in e or str(WORK) in e for e in result.errors)


def test_missing_user_blocks_everything_without_probing() -> None:
    host = make_host(user=None)
    kind = ProfileStateKind()
    # The kind declares the need; the planner checks it: no probe, the placeholders blocked.
    assert unmet_need(kind, host) == "user 'user' does not exist on this host"
    assert probe_and_plan_probes(kind, host) == []
    result = build_plan(SPEC, host, facts({}), [kind])
    assert [a.address for a in result.actions] == ["profile[ops].state", "profile[ops].workspace"]
    assert all(a.blocked == "user 'user' does not exist on this host" for a in result.actions)


def probe_and_plan_probes(kind: ProfileStateKind, host: HostContext) -> list[object]:
    """The probes a probe-and-plan pass asks of `kind` on `host` (it collects nothing here)."""
    asked: list[object] = []

    def collect(probes: Iterable[object]) -> Facts:
        asked.extend(probes)
        return facts({})

    plan_from_facts(SPEC, host, [kind], collect, "now")  # type: ignore[arg-type]
    return asked


def test_state_dir_and_workspace_overrides_resolve_against_the_user_home() -> None:
    spec = gateway_spec(Profile("ops", 18809, state_dir="~/gw/ops", workspace="/srv/work"))
    probes = list(ProfileStateKind().probes(spec, make_host()))
    assert [p.path for p in probes] == [  # type: ignore[attr-defined]
        USER.home / "gw/ops",
        USER.home / "gw/ops/credentials",
        Path("/srv/work"),
    ]


def test_fake_host_creates_then_fixes_drift(tmp_path: Path) -> None:
    gw = GatewayHost(tmp_path)
    spec = gateway_spec(Profile("ops", 18809))
    gw.converge(spec)
    state = gw.home / ".clawdbot-ops"
    for path in (state, state / "credentials", gw.home / "clawd-ops"):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o700
    os.chmod(state / "credentials", 0o755)
    os.chmod(gw.home / "clawd-ops", 0o755)  # the workspace is the user's: left alone
    assert addresses(gw.plan(spec)) == ["profile[ops].state"]
    gw.converge(spec)
    assert stat.S_IMODE(os.stat(state / "credentials").st_mode) == 0o700
    assert stat.S_IMODE(os.stat(gw.home / "clawd-ops").st_mode) == 0o755


def test_fake_host_symlinked_state_is_a_plan_error(tmp_path: Path) -> None:
    gw = GatewayHost(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o755)
    (gw.home / ".clawdbot-ops").symlink_to(elsewhere)
    plan_ = gw.plan(gateway_spec(Profile("ops", 18809)))
    assert any("symlink" in e and ".clawdbot-ops" in e for e in plan_.errors)
    assert stat.S_IMODE(os.stat(elsewhere).st_mode) == 0o755

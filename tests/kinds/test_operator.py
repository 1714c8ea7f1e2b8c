"""The Tailscale operator as data: `tailscale debug prefs` in, `tailscale set --operator` out."""

from __future__ import annotations

from reconciler.core.action import RunCommand
from reconciler.facts.tailscale import TailscalePrefs, TailscalePrefsProbe
from reconciler.kinds.operator import OperatorKind

from .helpers import facts, make_host, make_spec


def plan(prefs: TailscalePrefs, operator: str | None = "user"):  # type: ignore[no-untyped-def]
    spec = make_spec(operator=operator)
    return OperatorKind().plan(spec, make_host(), facts({TailscalePrefsProbe(): prefs}))


def test_setting_the_operator_is_one_root_command() -> None:
    (action,) = plan(TailscalePrefs("ok", operator=None)).actions
    (op,) = action.operations
    assert isinstance(op, RunCommand) and op.command.needs_root
    assert op.command.argv == ("tailscale", "set", "--operator=user")
    assert action.kind == "create" and action.blocked is None
    (changed,) = plan(TailscalePrefs("ok", operator="alice")).actions
    assert changed.kind == "update"
    assert [(c.path, c.before, c.after) for c in changed.changes] == [("operator", "alice", "user")]


def test_in_sync_or_unowned_plans_nothing() -> None:
    assert plan(TailscalePrefs("ok", operator="user")).actions == ()
    assert plan(TailscalePrefs("ok", operator="alice"), operator=None).actions == ()
    assert list(OperatorKind().probes(make_spec(operator=None), make_host())) == []


def test_a_stopped_daemon_blocks_with_its_detail() -> None:
    (action,) = plan(TailscalePrefs("stopped", "tailscaled: not running")).actions  # type: ignore[arg-type]
    assert action.blocked == "tailscaled: not running"

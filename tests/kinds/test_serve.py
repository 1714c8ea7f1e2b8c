"""Serve entries and the funnel guard, as data: probed facts in, planned actions out."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from reconciler.core.action import Action, RunCommand
from reconciler.core.plan import order_actions
from reconciler.facts.tailscale import (
    ServeStatusProbe,
    TailscalePrefs,
    TailscalePrefsProbe,
    TailscaleStatus,
    TailscaleStatusProbe,
    parse_serve_config,
)
from reconciler.kinds.serve import ServeKind
from reconciler.spec.model import ServeEntry

from .helpers import ROOT, USER, facts, make_host, make_spec

DNS = "vm102.tail1234.ts.net"
RUNNING = TailscaleStatus("ok", "", "Running", DNS, True)


def web(*mounts: tuple[int, str], funnel: tuple[int, ...] = ()) -> dict[str, Any]:
    return {
        "TCP": {str(p): {"HTTPS": True} for p, _ in mounts},
        "Web": {f"{DNS}:{p}": {"Handlers": {"/": {"Proxy": t}}} for p, t in mounts},
        "AllowFunnel": {f"{DNS}:{p}": True for p in funnel},
    }


def plan(
    config: Any,
    *,
    status: TailscaleStatus = RUNNING,
    current_operator: str | None = "user",
    invoker: Any = USER,
    **spec_kw: Any,
) -> list[Action]:
    spec = make_spec(**spec_kw)
    probe_facts = facts(
        {
            TailscaleStatusProbe(): status,
            ServeStatusProbe(): parse_serve_config(config),
            TailscalePrefsProbe(): TailscalePrefs("ok", operator=current_operator),
        }
    )
    return list(order_actions(ServeKind().plan(spec, make_host(invoker), probe_facts).actions))


def argvs(action: Action) -> list[list[str]]:
    return [list(op.command.argv) for op in action.operations if isinstance(op, RunCommand)]


PERSONAL = (ServeEntry(443, profile="personal"),)


@pytest.mark.parametrize("empty", [{}, None])
def test_missing_entry_is_added_from_empty_or_null(empty: Any) -> None:
    (action,) = plan(empty, serve=PERSONAL)
    assert (action.address, action.kind, action.blocked) == ("tailscale.serve[443]", "create", None)
    assert argvs(action) == [
        ["tailscale", "serve", "--bg", "--yes", "--https=443", "http://127.0.0.1:18789"]
    ]
    assert not action.needs_root  # the user is the operator


def test_matching_entry_plans_nothing() -> None:
    assert plan(web((443, "http://127.0.0.1:18789")), serve=PERSONAL) == []


def test_changed_target_is_removed_then_added() -> None:
    (action,) = plan(web((443, "http://127.0.0.1:18000")), serve=PERSONAL)
    assert action.kind == "update"
    assert argvs(action) == [
        ["tailscale", "serve", "--https=443", "off"],
        ["tailscale", "serve", "--bg", "--yes", "--https=443", "http://127.0.0.1:18789"],
    ]
    assert {c.path: (c.before, c.after) for c in action.changes}["target"] == (
        "http://127.0.0.1:18000",
        "http://127.0.0.1:18789",
    )


def test_localhost_is_not_silently_equal_to_127_0_0_1() -> None:
    (action,) = plan(web((443, "http://localhost:18789")), serve=PERSONAL)
    assert action.kind == "update"


def test_unlisted_entries_are_reported_and_only_pruned_when_asked() -> None:
    current = web((443, "http://127.0.0.1:18789"), (8443, "http://127.0.0.1:3000"))
    assert plan(current, serve=PERSONAL) == []
    spec = make_spec(serve=PERSONAL)
    kind_plan = ServeKind().plan(
        spec,
        make_host(),
        facts(
            {
                TailscaleStatusProbe(): RUNNING,
                ServeStatusProbe(): parse_serve_config(current),
                TailscalePrefsProbe(): TailscalePrefs("ok", operator="user"),
            }
        ),
    )
    assert any(
        "unmanaged serve on" in f.message and "8443" in f.address for f in kind_plan.findings
    )
    (action,) = plan(current, serve=PERSONAL, prune=True)
    assert (action.address, action.kind) == ("tailscale.serve[8443]", "delete")
    assert argvs(action) == [["tailscale", "serve", "--https=8443", "off"]]


def test_public_exposure_of_a_served_port_is_removed_by_serving_it_again() -> None:
    # `tailscale serve` on a funneled port drops the funnel and keeps the tailnet serve.
    actions = plan(web((443, "http://127.0.0.1:18789"), funnel=(443,)), serve=PERSONAL)
    (action,) = actions
    assert (action.address, action.kind) == ("tailscale.funnel[443]", "delete")
    assert argvs(action) == [
        ["tailscale", "serve", "--bg", "--yes", "--https=443", "http://127.0.0.1:18789"]
    ]
    assert action.warning and "public internet" in action.warning
    assert "PUBLIC EXPOSURE" in action.reason


def test_public_exposure_of_an_unmanaged_port_is_removed_but_the_serve_kept() -> None:
    current = web((443, "http://127.0.0.1:18789"), (8443, "http://127.0.0.1:3000"), funnel=(8443,))
    (action,) = plan(current, serve=PERSONAL)
    assert (action.address, action.kind) == ("tailscale.funnel[8443]", "delete")
    assert argvs(action) == [
        ["tailscale", "serve", "--bg", "--yes", "--https=8443", "http://127.0.0.1:3000"]
    ]
    # With prune the whole entry goes, exposure included, in one step.
    (action,) = plan(current, serve=PERSONAL, prune=True)
    assert (action.address, action.kind) == ("tailscale.serve[8443]", "delete")
    assert action.warning and "public internet" in action.warning


def test_a_funnel_without_a_proxy_is_turned_off() -> None:
    config = {
        "AllowFunnel": {f"{DNS}:10000": True},
        "Web": {f"{DNS}:10000": {"Handlers": {"/": {"Text": "hi"}}}},
    }
    (action,) = plan(config, serve=())
    assert argvs(action) == [["tailscale", "funnel", "--https=10000", "off"]]


def test_funnel_allow_leaves_unmanaged_funnels_alone() -> None:
    current = web((8443, "http://127.0.0.1:3000"), funnel=(8443,))
    assert plan(current, serve=(), funnel="allow") == []


def test_the_reconciler_never_opens_a_funnel_unless_the_spec_says_so() -> None:
    for actions in (plan({}, serve=PERSONAL), plan({}, serve=PERSONAL, funnel="allow")):
        assert all("funnel" not in argv[1] for a in actions for argv in argvs(a))
    public = (ServeEntry(443, profile="personal", funnel=True),)
    (action,) = plan({}, serve=public, funnel="allow")
    assert argvs(action)[0][:2] == ["tailscale", "funnel"]
    assert action.warning


def test_foreground_and_services_are_never_touched() -> None:
    config = {
        "Foreground": {
            "abc123": {
                "Web": {f"{DNS}:443": {"Handlers": {"/": {"Proxy": "http://127.0.0.1:9"}}}},
                "AllowFunnel": {f"{DNS}:443": True},
            }
        },
        "Services": {"svc:web": {"TCP": {"443": {"HTTPS": True}}}},
    }
    actions = plan(config, serve=PERSONAL, prune=True)
    assert [a.address for a in actions] == ["tailscale.serve[443]"]
    assert actions[0].kind == "create"


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (TailscaleStatus("not-installed", "tailscale: not installed"), "tailscale: not installed"),
        (TailscaleStatus("daemon-down", "tailscaled: not running"), "tailscaled: not running"),
        (TailscaleStatus("ok", "", "NeedsLogin", DNS, True), "BackendState NeedsLogin"),
        (TailscaleStatus("ok", "", "Running", DNS, False), "HTTPS certificates are not enabled"),
    ],
)
def test_unusable_tailscale_blocks_serve_with_the_reason(
    status: TailscaleStatus, reason: str
) -> None:
    config: Any = {} if status.reachability == "ok" else None
    spec_facts_config = parse_serve_config(config)
    spec = make_spec(serve=PERSONAL)
    from reconciler.facts.tailscale import ServeConfig

    serve_config = (
        spec_facts_config
        if status.reachability == "ok"
        else ServeConfig(status.reachability, status.detail)
    )
    kind_plan = ServeKind().plan(
        spec,
        make_host(),
        facts(
            {
                TailscaleStatusProbe(): status,
                ServeStatusProbe(): serve_config,
                TailscalePrefsProbe(): TailscalePrefs("ok", operator="user"),
            }
        ),
    )
    (action,) = kind_plan.actions
    assert action.blocked and reason in action.blocked


def test_non_operator_needs_root_and_waits_for_the_operator_change() -> None:
    # The spec sets operator "user" and the node has none: serve waits for the operator action.
    (action,) = plan({}, serve=PERSONAL, current_operator=None, invoker=USER)
    assert action.depends_on == ("tailscale.operator",)
    assert not action.needs_root
    # The spec leaves the operator alone and it is someone else: serve needs root.
    (action,) = plan({}, serve=PERSONAL, current_operator="someone", invoker=USER, operator=None)
    assert action.needs_root and action.depends_on == ()
    (action,) = plan({}, serve=PERSONAL, current_operator=None, invoker=ROOT, operator=None)
    assert not action.needs_root


def test_extra_paths_on_a_managed_port_block_instead_of_wiping_them() -> None:
    config = {
        "Web": {
            f"{DNS}:443": {
                "Handlers": {
                    "/": {"Proxy": "http://127.0.0.1:1"},
                    "/grafana": {"Proxy": "http://127.0.0.1:3000"},
                }
            }
        }
    }
    (action,) = plan(config, serve=PERSONAL)
    assert action.blocked and "/grafana" in action.blocked


def test_recorded_reference_example_parses() -> None:
    path = Path(__file__).parents[1] / "data/probes/tailscale/serve-status-two-ports.json"
    config = parse_serve_config(json.loads(path.read_text()))
    assert [(m.port, m.root_proxy()) for m in config.web] == [
        (443, "http://127.0.0.1:18789"),
        (8443, "http://127.0.0.1:18809"),
    ]
    assert config.funnel == ("vm102.tail1234.ts.net:443",)

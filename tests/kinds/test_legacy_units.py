"""Legacy and duplicate gateway units: reported, and removed only when the spec prunes."""

from __future__ import annotations

from pathlib import Path

import pytest
from fakehost import gateway_unit_text

from reconciler.facts.files import backup_path
from reconciler.kinds.legacy_units import claimed_port
from reconciler.spec.model import Profile

from .gateway_host import GatewayHost, addresses, gateway_spec


@pytest.mark.parametrize(
    ("text", "port"),
    [
        (gateway_unit_text("/home/user", port=18789), 18789),
        (gateway_unit_text("/home/user", profile="work", port=18809), 18809),
        ("[Service]\nExecStart=/usr/bin/clawdbot gateway --port=19001\n", 19001),
        ('[Service]\nExecStart="/usr/bin/clawdbot" gateway --port "19002"\n', 19002),
        (
            "[Service]\nExecStart=/usr/bin/clawdbot gateway\n"
            "Environment=MOLTBOT_GATEWAY_PORT=19003\n",
            19003,
        ),
        ("[Service]\nExecStart=/usr/bin/clawdbot gateway\n", None),
    ],
)
def test_claimed_port(text: str, port: int | None) -> None:
    assert claimed_port(text) == port


def test_a_stray_unit_on_a_profile_port_is_reported_then_pruned(tmp_path: Path) -> None:
    gw = GatewayHost(tmp_path)
    legacy = gw.fake.install_gateway_unit(None, port=18789)  # clawdbot-gateway.service, running
    (gw.fake.unit_dir / "clawdbot-gateway.service.bak").write_text("old\n")  # ignored
    spec = gateway_spec(Profile("ops", 18809), Profile("personal", 18789))
    plan = gw.plan(spec)
    (finding,) = [f for f in plan.findings if f.address.startswith("unit[")]
    assert finding.address == "unit[clawdbot-gateway.service]" and finding.severity == "warning"
    assert "port 18789 of profile personal" in finding.message
    assert "unit[clawdbot-gateway.service]" not in addresses(plan)
    (error,) = plan.errors  # it holds the port: starting ours would fail
    assert "clawdbot-gateway.service" in error and "prune" in error

    pruned = gateway_spec(Profile("ops", 18809), Profile("personal", 18789, prune=True))
    plan = gw.plan(pruned)
    assert not plan.errors
    removal = next(a for a in plan.actions if a.address == "unit[clawdbot-gateway.service]")
    assert removal.kind == "delete" and removal.warning
    reload = next(a for a in plan.actions if a.address == "systemd.daemon-reload")
    assert "unit[clawdbot-gateway.service]" in reload.depends_on
    service = next(a for a in plan.actions if a.address == "profile[personal].service")
    assert "unit[clawdbot-gateway.service]" in service.depends_on
    gw.converge(pruned)
    unit_file = gw.fake.unit_dir / legacy
    assert not unit_file.exists() and backup_path(unit_file).exists()
    assert (gw.fake.unit_dir / "clawdbot-gateway.service.bak").exists()
    assert gw.fake.unit_runtime(legacy).get("active") != "active"
    owners = {lst["port"]: lst["unit"] for lst in gw.fake.listeners()}
    assert owners[18789] == "clawdbot-gateway-personal.service"
    assert not any(f.address.startswith("unit[") for f in gw.plan(pruned).findings)


def test_prune_units_removes_every_unowned_gateway_unit(tmp_path: Path) -> None:
    gw = GatewayHost(tmp_path)
    molt = gw.fake.install_gateway_unit("old", port=19500, product="moltbot", start=False)
    spec = gateway_spec(Profile("ops", 18809))
    plan = gw.plan(spec)
    (finding,) = [f for f in plan.findings if f.address.startswith("unit[")]
    assert finding.severity == "info" and "port 19500" in finding.message
    pruned = gateway_spec(Profile("ops", 18809), prune_units=True)
    assert f"unit[{molt}]" in addresses(gw.plan(pruned))
    gw.converge(pruned)
    assert not (gw.fake.unit_dir / molt).exists()
    # the profile prune flag alone does not touch units on other ports
    gw.fake.install_gateway_unit("old2", port=19600, start=False)
    assert "unit[clawdbot-gateway-old2.service]" not in addresses(
        gw.plan(gateway_spec(Profile("ops", 18809, prune=True)))
    )

"""Property: any set of profiles converges from an empty host, and moving one profile's port
changes exactly that profile's config, unit and service (restart), nothing else."""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.core.action import RunCommand
from reconciler.spec.model import Profile
from reconciler.spec.naming import product_names

from .gateway_host import GatewayHost, addresses, gateway_spec

NAMES = st.lists(
    st.from_regex(r"[a-z][a-z0-9_-]{0,8}", fullmatch=True), min_size=1, max_size=3, unique=True
)


@st.composite
def profile_sets(draw: st.DrawFn) -> tuple[tuple[Profile, ...], int, int]:
    names = draw(NAMES)
    # ports at least 20 apart (docs/host-facts.md §1: the gateway uses base+N for helpers)
    slots = draw(
        st.lists(
            st.integers(900, 1400), min_size=len(names) + 1, max_size=len(names) + 1, unique=True
        )
    )
    ports = [20 * s for s in slots]
    profiles = tuple(
        Profile(name, port, auth=draw(st.sampled_from(["none", "token"])))
        for name, port in zip(names, ports, strict=False)
    )
    moved = draw(st.integers(0, len(profiles) - 1))
    return profiles, moved, ports[-1]  # the last port is free: the moved profile goes there


@settings(max_examples=3, deadline=None)
@given(profile_sets())
def test_converges_and_a_port_change_touches_one_profile(
    case: tuple[tuple[Profile, ...], int, int],
) -> None:
    profiles, moved, new_port = case
    with tempfile.TemporaryDirectory() as tmp:
        gw = GatewayHost(Path(tmp))
        spec = gateway_spec(*profiles)
        first = gw.plan(spec)
        for p in profiles:
            for part in ("state", "workspace", "config", "unit", "service", "health"):
                assert f"profile[{p.name}].{part}" in addresses(first)
        gw.converge(spec)

        target = profiles[moved]
        changed = gateway_spec(
            *(dataclasses.replace(p, port=new_port) if p is target else p for p in profiles)
        )
        plan = gw.plan(changed)
        name = target.name
        assert addresses(plan) == [
            f"profile[{name}].config",
            f"profile[{name}].unit",
            "systemd.daemon-reload",
            f"profile[{name}].service",
            f"profile[{name}].health",
        ]
        service = next(a for a in plan.actions if a.address == f"profile[{name}].service")
        assert [op.command.argv[2] for op in service.operations if isinstance(op, RunCommand)] == [
            "restart"
        ]
        gw.converge(changed)
        ports = {lst["unit"]: lst["port"] for lst in gw.fake.listeners()}
        assert ports[product_names("clawdbot").unit(name)] == new_port

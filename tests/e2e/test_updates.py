"""Gateway updates with real releases under real systemd (issue 13), in ONE container.

The container has no registry: node 22 comes from the real-gateway cache, npm and an npm cache
holding exactly the releases used here from ``images.ensure_npm_cache()`` (bound read-only at
/opt/npm-cache), and the user's ``~/.npmrc`` makes every ``npm install`` offline from it. The
releases (docs/host-facts.md §6, node 22.23):

* ``openclaw`` 2026.1.30 and 2026.2.1 install and start (``images.OPENCLAW_WORKING``);
* ``openclaw`` 2026.9.6 installs with ignore-scripts (npm only warns EBADENGINE; its preinstall
  script would refuse node 22) and prints ``--version``, but its
  launcher refuses to start a gateway on node < 24.16 (``images.OPENCLAW_BROKEN``);
* a version that does not exist fails ``npm install --offline`` with ETARGET.

The scenario, in order, on two profiles (``tests/e2e/specs/updates.yaml``, ``install: versioned``):
a) both on 2026.1.30: installed by the reconciler, both healthy over the gateway's RPC;
b) canary: ``ops`` moves to 2026.2.1, ``personal`` keeps running 2026.1.30 untouched;
d) ``ops`` to a version whose install fails: nothing switched, no downtime, no leftovers;
c) ``ops`` to the release that needs node 24: refused by the install step (its package.json
   engines), nothing switched, remembered, shown blocked by the next plan, and not retried by
   the timer's apply;
e) a third profile, a clawdbot one as ``clawdbot gateway install`` leaves it, moved to openclaw
   by its own spec (the product move, issue 21): one gated step, state and token kept.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from . import harness, images
from .harness import UID, USER, Container

HOME = f"/home/{USER}"
OLD, NEW = images.OPENCLAW_WORKING
BROKEN = images.OPENCLAW_BROKEN
MISSING = "2026.1.31"  # no such openclaw release: npm answers ETARGET
SPEC_SOURCE = Path(__file__).resolve().parent / "specs" / "updates.yaml"
SPEC = "/etc/reconciler/updates.yaml"
PORTS = {"ops": 18809, "personal": 18789}
PREFIX = f"{HOME}/.local/lib/openclaw"
LIB = f"{HOME}/.local/lib"


@pytest.fixture(scope="module")
def c(make_module_container: Callable[..., Container], npm_cache_dir) -> Container:  # type: ignore[no-untyped-def]
    # Every version is installed below ~/.local/lib (the reconciler's default prefix
    # ~/.local/lib/openclaw): a tmpfs, because this disk discards every freed
    # block synchronously and deleting 40 000 files of each install took minutes at teardown.
    box = make_module_container(
        boot=False,
        real_gateway=True,
        npm_cache=npm_cache_dir,
        nspawn_args=[f"--tmpfs={LIB}:mode=0755,uid={UID},gid={UID}"],
    )
    assert box.root is not None
    local = box.root / HOME.lstrip("/") / ".local"
    local.mkdir(mode=0o755)  # the user's, or nspawn creates it root's for the mount point
    os.chown(local, UID, UID)
    box.boot()
    box.write_file(f"{HOME}/.npmrc", images.npmrc(), mode=0o644, user=USER)
    box.run(["loginctl", "enable-linger", USER])
    box.wait_unit("user@1000.service", timeout=30)
    return box


def show(r: object) -> str:
    return f"rc={getattr(r, 'returncode', '?')}\n{getattr(r, 'stdout', '')}\n{getattr(r, 'stderr', '')}"


def entry(prefix: str) -> str:
    return f"{prefix}/node_modules/openclaw/openclaw.mjs"


def write_spec(c: Container, versions: dict[str, str]) -> str:
    """updates.yaml with runtime.gateway.version = versions["personal"] and a canary
    `gateway_version` for every profile whose version differs."""
    doc: dict[str, Any] = yaml.safe_load(SPEC_SOURCE.read_text())
    base = versions["personal"]
    doc["runtime"]["gateway"]["version"] = base
    for name, version in versions.items():
        if version != base:
            doc["profiles"][name]["gateway_version"] = version
    c.write_file(SPEC, yaml.safe_dump(doc, sort_keys=False), mode=0o644)
    return SPEC


def reconciler(c: Container, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return c.run(["reconciler", *args], check=False, timeout=timeout)


def apply(c: Container, expect: int) -> tuple[float, str]:
    t0 = time.monotonic()
    r = reconciler(c, "apply", SPEC, "--yes", "--no-color")
    took = time.monotonic() - t0
    assert r.returncode == expect, show(r)
    return took, r.stdout + r.stderr


def assert_no_changes(c: Container) -> None:
    r = reconciler(c, "plan", SPEC, "--detailed-exitcode", "--no-color")
    assert r.returncode == 0 and "No changes" in r.stdout, show(r)


def unit(profile: str) -> str:
    return f"openclaw-gateway-{profile}.service"


def unit_prop(c: Container, profile: str, prop: str) -> str:
    return c.systemctl_user("show", "-p", prop, "--value", unit(profile)).stdout.strip()


def running_version(c: Container, profile: str) -> str | None:
    """The version the profile's running gateway was started from: the one its loaded unit
    names, when the unit file on disk is what systemd loaded (the gateway renames its process
    to `openclaw-gateway`, so /proc/PID/cmdline no longer shows its entry point)."""
    if unit_prop(c, profile, "NeedDaemonReload") != "no":
        return None
    exec_start = unit_prop(c, profile, "ExecStart")
    marker = PREFIX + "/"
    if marker not in exec_start:
        return None
    return exec_start.split(marker, 1)[1].split("/", 1)[0]


def rpc_health(c: Container, profile: str, version: str) -> tuple[dict[str, Any] | None, str]:
    """`openclaw gateway health --json` of `version`'s CLI with the profile's environment and
    token file (as the reconciler runs it): (the answer, or None and why)."""
    state = f"{HOME}/.openclaw-{profile}"
    # No --url: the port from OPENCLAW_GATEWAY_PORT, as the reconciler asks (openclaw 2026.9
    # refuses --url without --token; docs/host-facts.md §8).
    script = (
        'set -a; . "$1/gateway.env"; set +a; OPENCLAW_GATEWAY_PORT="$3"; export '
        'OPENCLAW_GATEWAY_PORT; exec node "$2" gateway health --json'
    )
    r = c.run(
        ["sh", "-c", script, "sh", state, entry(f"{PREFIX}/{version}"), str(PORTS[profile])],
        user=USER,
        env={
            "OPENCLAW_PROFILE": profile,
            "OPENCLAW_STATE_DIR": state,
            "OPENCLAW_CONFIG_PATH": f"{state}/openclaw.json",
        },
        check=False,
        timeout=120,
    )
    try:
        doc = json.loads(r.stdout) if r.returncode == 0 else None
    except ValueError:
        doc = None
    return (doc if isinstance(doc, dict) else None), show(r)[-2000:]


def assert_runs(c: Container, profile: str, version: str) -> None:
    """The unit names `version`'s entry point, its process runs it, and it answers ok: true."""
    exec_start = unit_prop(c, profile, "ExecStart")
    assert entry(f"{PREFIX}/{version}") in exec_start, exec_start
    assert unit_prop(c, profile, "ActiveState") == "active"
    assert running_version(c, profile) == version
    deadline = time.monotonic() + 90  # listening (what apply waits for) comes before the RPC
    while True:
        health, why = rpc_health(c, profile, version)
        if (health and health.get("ok") is True) or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert health and health.get("ok") is True, why


def installed(c: Container) -> list[str]:
    return sorted(c.run(["ls", "-A", PREFIX], user=USER).stdout.split())


#: figures the steps measured, printed at the end of the module (pytest -s)
FIGURES: dict[str, str] = {}


@pytest.fixture(scope="module", autouse=True)
def figures() -> Iterator[None]:
    yield
    for step, text in FIGURES.items():
        print(f"updates {step}: {text}")


# ------------------------------------------------------------------ the scenario


def test_a_two_profiles_on_a_working_release(c: Container) -> None:
    write_spec(c, {"ops": OLD, "personal": OLD})
    took, _ = apply(c, expect=0)
    for profile in PORTS:
        assert_runs(c, profile, OLD)
    assert installed(c) == [OLD]
    du = c.run(["du", "-sm", f"{PREFIX}/{OLD}"]).stdout.split()[0]
    # legacy-peer-deps (images.NPM_SETTINGS) keeps node-llama-cpp's CUDA builds out
    assert not c.exists(f"{PREFIX}/{OLD}/node_modules/node-llama-cpp")
    assert_no_changes(c)
    FIGURES["a"] = f"first apply (install {OLD} + 2 first starts) {took:.0f}s, {du} MB"


def test_b_canary_runs_two_versions_at_once(c: Container) -> None:
    personal_pid = unit_prop(c, "personal", "MainPID")
    write_spec(c, {"ops": NEW, "personal": OLD})
    took, out = apply(c, expect=0)
    assert_runs(c, "ops", NEW)
    assert_runs(c, "personal", OLD)
    assert unit_prop(c, "personal", "MainPID") == personal_pid  # untouched
    assert installed(c) == [OLD, NEW]
    r = reconciler(c, "versions", SPEC, "--format", "json")
    assert r.returncode == 0, show(r)
    assert OLD in r.stdout and NEW in r.stdout, r.stdout
    assert_no_changes(c)
    FIGURES["b"] = f"canary apply (install {NEW} + switch ops) {took:.0f}s: " + " | ".join(
        line.strip() for line in out.splitlines() if "downtime" in line
    )


def test_d_failed_install_switches_nothing(c: Container) -> None:
    before = {p: unit_prop(c, p, "MainPID") for p in PORTS}
    write_spec(c, {"ops": MISSING, "personal": OLD})
    took, out = apply(c, expect=1)
    assert "ETARGET" in out or "No matching version" in out, out
    assert {p: unit_prop(c, p, "MainPID") for p in PORTS} == before  # zero downtime
    assert_runs(c, "ops", NEW)
    assert installed(c) == [OLD, NEW]  # no leftover, no half install
    FIGURES["d"] = f"failed install apply {took:.0f}s, no restart"


def test_c_release_needing_another_node_is_refused_before_any_switch(c: Container) -> None:
    """2026.9.6 needs node >=24.16 (its package.json engines) and this host runs node 22: the
    install step refuses it before it is renamed into place (it used to install, be switched
    to and be rolled back by the health gate: downtime for nothing), so nothing restarts; the
    failure is remembered, the next plan shows it with the node to install, and the timer's
    apply does not try again."""
    config = f"{HOME}/.openclaw-ops/openclaw.json"
    config_before = c.read_file(config)
    before = {p: unit_prop(c, p, "MainPID") for p in PORTS}
    write_spec(c, {"ops": BROKEN, "personal": OLD})
    took, out = apply(c, expect=1)
    assert f"{BROKEN} needs node >=24.16.0 <25 || >=26.1.0" in out, out
    assert {p: unit_prop(c, p, "MainPID") for p in PORTS} == before  # zero downtime
    assert_runs(c, "ops", NEW)
    assert c.read_file(config) == config_before
    assert installed(c) == [OLD, NEW]  # never renamed into place
    failed = json.loads(c.read_file(f"{HOME}/.local/state/reconciler/gateway-failed-installs.json"))
    assert BROKEN in failed["versions"], failed
    r = reconciler(c, "plan", SPEC, "--no-color")
    assert f"openclaw@{BROKEN} failed to install at " in r.stdout, show(r)
    assert "needs node >=24.16.0" in r.stdout and "--retry ops" in r.stdout, show(r)
    # the timer runs `reconciler apply SPEC --yes` as the user: it must not try again
    t = c.run(
        ["reconciler", "apply", SPEC, "--yes", "--no-color"], user=USER, check=False, timeout=600
    )
    again = json.loads(c.read_file(f"{HOME}/.local/state/reconciler/gateway-failed-installs.json"))
    assert again == failed, show(t)  # a retried install would have recorded a new failure
    assert {p: unit_prop(c, p, "MainPID") for p in PORTS} == before, show(t)
    assert installed(c) == [OLD, NEW]
    FIGURES["c"] = f"refused apply (engines) {took:.0f}s, no restart"


# ------------------------------------------------------------------ the product move (issue 21)

MOVE_SPEC = "/etc/reconciler/move.yaml"
MOVE_PORT = 18829
MOVED_STATE = f"{HOME}/.clawdbot-legacy"


def write_move_spec(c: Container) -> None:
    """A third profile, `legacy`, on openclaw `NEW` (versioned, installed by b) keeping the
    state directory of its clawdbot unit."""
    doc = {
        "apiVersion": "reconciler/v1",
        "host": {"name": "e2e", "user": USER},
        "product": "openclaw",
        "runtime": {
            "node": ">=22.12",
            "gateway": {
                "version": NEW,
                "install": "versioned",
                "overrides": dict(images.LIBSIGNAL_OVERRIDE),
                "start_timeout": "240s",
            },
        },
        "linger": True,
        "profiles": {
            "legacy": {"port": MOVE_PORT, "auth": "token", "state_dir": "~/.clawdbot-legacy"}
        },
    }
    c.write_file(MOVE_SPEC, yaml.safe_dump(doc, sort_keys=False), mode=0o644)


def env_value(c: Container, key: str) -> str | None:
    text = c.read_file(f"{MOVED_STATE}/gateway.env")
    return next((ln.split("=", 1)[1] for ln in text.splitlines() if ln.startswith(key + "=")), None)


def test_e_a_clawdbot_profile_moves_to_openclaw_keeping_its_state(c: Container) -> None:
    """A clawdbot 2026.1.24-3 profile as `clawdbot gateway install` leaves it (its unit, its
    state directory and config, a token in gateway.env) moved to openclaw NEW by a spec that
    keeps its `state_dir`: one gated step; the openclaw unit runs on the clawdbot state
    directory and config and answers its RPC with the same token; the clawdbot unit is gone;
    the next plan is empty. clawdbot is enabled but not started here: its cold start takes
    60-90 s and, stopped in the middle of it, it takes systemd's default 90 s stop timeout
    (measured by hand, docs/updates.md), too long for CI's e2e budget."""
    harness.install_gateway_service(c, port=MOVE_PORT, profile="legacy", start=False)
    c.systemctl_user("daemon-reload")
    c.systemctl_user("enable", "clawdbot-gateway-legacy.service")
    token = "ab" * 32
    c.write_file(
        f"{MOVED_STATE}/gateway.env", f"CLAWDBOT_GATEWAY_TOKEN={token}\n", mode=0o600, user=USER
    )
    sessions = f"{MOVED_STATE}/agents/main/sessions"
    c.run(["mkdir", "-p", sessions], user=USER)
    c.write_file(f"{sessions}/s1.jsonl", '{"role": "user"}\n', mode=0o600, user=USER)
    files_before = set(c.run(["find", MOVED_STATE, "-type", "f"], user=USER).stdout.split())

    write_move_spec(c)
    r = reconciler(c, "plan", MOVE_SPEC, "--no-color")
    assert "product move clawdbot -> openclaw " in r.stdout, show(r)
    t0 = time.monotonic()
    r = reconciler(c, "apply", MOVE_SPEC, "--yes", "--no-color")
    took = time.monotonic() - t0
    assert r.returncode == 0, show(r)
    out = r.stdout + r.stderr
    assert not c.exists(f"{HOME}/.config/systemd/user/clawdbot-gateway-legacy.service")
    new = "openclaw-gateway-legacy.service"
    assert c.systemctl_user("show", "-p", "ActiveState", "--value", new).stdout.strip() == "active"
    assert env_value(c, "OPENCLAW_GATEWAY_TOKEN") == token
    assert env_value(c, "CLAWDBOT_GATEWAY_TOKEN") is None
    assert not c.exists(f"{HOME}/.openclaw-legacy")
    files_after = set(c.run(["find", MOVED_STATE, "-type", "f"], user=USER).stdout.split())
    assert files_before <= files_after, files_before - files_after
    # openclaw answers its RPC with the kept state, config and token (no --url: the port
    # from the environment, as the reconciler asks)
    script = 'set -a; . "$1/gateway.env"; set +a; exec node "$2" gateway health --json'
    deadline = time.monotonic() + 90
    while True:
        h = c.run(
            ["sh", "-c", script, "sh", MOVED_STATE, entry(f"{PREFIX}/{NEW}")],
            user=USER,
            env={
                "OPENCLAW_PROFILE": "legacy",
                "OPENCLAW_STATE_DIR": MOVED_STATE,
                "OPENCLAW_CONFIG_PATH": f"{MOVED_STATE}/clawdbot.json",
                "OPENCLAW_GATEWAY_PORT": str(MOVE_PORT),
            },
            check=False,
            timeout=120,
        )
        if '"ok": true' in h.stdout or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert '"ok": true' in h.stdout, show(h)
    r = reconciler(c, "plan", MOVE_SPEC, "--detailed-exitcode", "--no-color")
    assert r.returncode == 0 and "No changes" in r.stdout, show(r)
    downtime = next((ln.strip() for ln in out.splitlines() if "downtime" in ln), "")
    FIGURES["e"] = f"move apply {took:.0f}s: {downtime}"

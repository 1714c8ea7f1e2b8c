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
"""

from __future__ import annotations

import json
import os
import textwrap
import time
from collections.abc import Callable

import pytest

from . import images
from .harness import UID, USER, Container

HOME = f"/home/{USER}"
TOKEN = "e2e-updates-token-0123456789abcdef"
OLD, NEW = images.OPENCLAW_WORKING
BROKEN = images.OPENCLAW_BROKEN
MISSING = "2026.1.31"  # no such openclaw release: npm answers ETARGET
LIB = f"{HOME}/.local/lib"
MANUAL = f"{LIB}/manual"  # installs done by hand (not by the reconciler)


@pytest.fixture(scope="module")
def c(make_module_container: Callable[..., Container], npm_cache_dir) -> Container:  # type: ignore[no-untyped-def]
    # Every version is installed below ~/.local/lib (the reconciler's default prefix
    # ~/.local/lib/openclaw, and MANUAL): a tmpfs, because this disk discards every freed
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


def npm_install_by_hand(c: Container, version: str, timeout: float = 600) -> tuple[float, object]:
    """`npm install` of one openclaw version into MANUAL/<version> as the user, offline."""
    d = f"{MANUAL}/{version}"
    pkg = images.gateway_package_json("openclaw", version)
    c.write_file(f"{d}/package.json", json.dumps(pkg, indent=2) + "\n", user=USER)
    t0 = time.monotonic()
    r = c.run(["npm", "install", "--loglevel=warn"], user=USER, cwd=d, check=False, timeout=timeout)
    return time.monotonic() - t0, r


def entry(prefix: str) -> str:
    return f"{prefix}/node_modules/openclaw/openclaw.mjs"


def openclaw(c: Container, prefix: str, *args: str, timeout: float = 120, **kw: object):  # type: ignore[no-untyped-def]
    return c.run(
        ["node", entry(prefix), *args],
        user=USER,
        env={"OPENCLAW_GATEWAY_TOKEN": TOKEN},
        timeout=timeout,
        check=False,
        **kw,  # type: ignore[arg-type]
    )


def health(c: Container, prefix: str, port: int) -> dict[str, object] | None:
    r = openclaw(c, prefix, "gateway", "health", "--url", f"ws://127.0.0.1:{port}", "--json")
    if r.returncode != 0:
        return None
    try:
        return json.loads(r.stdout)  # type: ignore[no-any-return]
    except ValueError:
        return None


def wait_healthy(c: Container, prefix: str, port: int, timeout: float) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        h = health(c, prefix, port)
        if h and h.get("ok") is True:
            return time.monotonic() - t0
        time.sleep(1)
    raise TimeoutError(f"no healthy gateway on {port} after {timeout}s")


def manual_unit(c: Container, name: str, prefix: str, port: int) -> None:
    """A user unit running the gateway from ``prefix`` (the shape `gateway install` writes)."""
    state = f"{HOME}/.openclaw-{name}"
    c.run(["install", "-d", "-m", "700", "-o", USER, "-g", USER, state])
    c.write_file(
        f"{state}/openclaw.json",
        textwrap.dedent(
            f"""\
            {{
              gateway: {{ mode: "local", port: {port}, bind: "loopback", tailscale: {{ mode: "off" }} }},
            }}
            """
        ),
        mode=0o600,
        user=USER,
    )
    unit = f"openclaw-gateway-{name}.service"
    c.write_file(
        f"{HOME}/.config/systemd/user/{unit}",
        "[Service]\n"
        f"ExecStart=/usr/local/bin/node {entry(prefix)} gateway --port {port}\n"
        f"Environment=HOME={HOME}\nEnvironment=PATH=/usr/local/bin:/usr/bin:/bin\n"
        f"Environment=OPENCLAW_PROFILE={name}\nEnvironment=OPENCLAW_STATE_DIR={state}\n"
        f"Environment=OPENCLAW_CONFIG_PATH={state}/openclaw.json\n"
        f"Environment=OPENCLAW_GATEWAY_TOKEN={TOKEN}\n"
        "Restart=on-failure\nRestartSec=5\n",
        user=USER,
    )
    c.systemctl_user("daemon-reload")
    c.systemctl_user("restart", unit)


# ------------------------------------------------------------------ the harness, by hand


def test_offline_npm_cache_installs_and_starts_a_real_release(c: Container) -> None:
    took, r = npm_install_by_hand(c, OLD)
    assert r.returncode == 0, show(r)  # type: ignore[attr-defined]
    prefix = f"{MANUAL}/{OLD}"
    v = openclaw(c, prefix, "--version")
    assert v.returncode == 0 and v.stdout.strip() == OLD, show(v)
    du = c.run(["du", "-sm", prefix]).stdout.split()[0]
    # legacy-peer-deps (images.NPM_SETTINGS) keeps node-llama-cpp's CUDA builds out
    assert c.run(["test", "-e", f"{prefix}/node_modules/node-llama-cpp"], check=False).returncode
    manual_unit(c, "manual", prefix, 18789)
    first = wait_healthy(c, prefix, 18789, timeout=300)
    print(
        f"offline install of openclaw {OLD}: {took:.0f}s, {du} MB; first start healthy {first:.0f}s"
    )
    c.systemctl_user("stop", "openclaw-gateway-manual.service")


def test_offline_install_of_a_missing_version_fails_with_etarget(c: Container) -> None:
    _, r = npm_install_by_hand(c, MISSING, timeout=120)
    assert r.returncode != 0, show(r)  # type: ignore[attr-defined]
    assert "ETARGET" in r.stderr or "ENOTCACHED" in r.stderr, show(r)  # type: ignore[attr-defined]
    assert not c.exists(f"{MANUAL}/{MISSING}/node_modules/openclaw/package.json")


def test_broken_release_prints_its_version_but_refuses_to_start(c: Container) -> None:
    _, r = npm_install_by_hand(c, BROKEN)
    assert r.returncode == 0, show(r)  # type: ignore[attr-defined]
    prefix = f"{MANUAL}/{BROKEN}"
    v = openclaw(c, prefix, "--version")
    assert v.returncode == 0 and BROKEN in v.stdout, show(v)
    g = openclaw(c, prefix, "gateway", "--port", "18809", timeout=120)
    assert g.returncode != 0 and "use 24.16+" in g.stderr, show(g)

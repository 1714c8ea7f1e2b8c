"""Remote administration (issue 16) against real systemd hosts: two containers with sshd on a
private network the test makes (network.py), planned and applied in parallel from the "admin
machine" (this process's side of that network), never touching anything else.

The admin side is the built wheel installed into a fresh venv with the runtime dependencies only
(`installed_reconciler`), and the targets have no reconciler for their python3: what reaches
them is the agent that wheel builds from its own metadata (issue 20).

One test walks the whole story on the same two containers (boots are the expensive part): a
fleet plan (one host's gateway config has JSON5 comments, which the agent reads without the
compiled parser), a fleet apply that converges both, a second apply that runs nothing, a lost link in
the middle of an apply that still leaves the host converged, and a host that is down while the
other converges.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from . import images
from .harness import Container, gateway_names
from .network import PrivateNetwork
from .test_scenarios import SPECS, assert_converged, show

HOSTS = ("vm201", "vm202")


@pytest.fixture
def network() -> Iterator[PrivateNetwork]:
    net = PrivateNetwork().create()
    try:
        yield net
    finally:
        net.destroy()


def _keys(folder: Path) -> Path:
    key = folder / "admin_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    return key


def _host(
    make_container: Callable[..., Container], net: PrivateNetwork, name: str, pub: str
) -> tuple[Container, str]:
    namespace, address = net.add_host()
    c = make_container(network_namespace=namespace, hostname=name)
    c.run(["install", "-d", "-m", "700", "/root/.ssh"])
    c.write_file("/root/.ssh/authorized_keys", pub, mode=0o600)
    c.run(["systemctl", "start", "ssh"])
    return c, address


def _spec(folder: Path, name: str, address: str) -> Path:
    text = (SPECS / "two-gateways.yaml").read_text().replace("name: e2e", f"name: {name}")
    ssh = f'  user: user\n  ssh:\n    address: "{address}"\n    user: root\n'
    text = text.replace("  user: user\n", ssh, 1)
    path = folder / f"{name}.yaml"
    path.write_text(text)
    return path


COMMENTED_CONFIG = """{
  // written by hand before the reconciler came: JSON5 with comments
  gateway: {port: 18809, mode: 'local',},
}
"""


def test_a_fleet_is_planned_and_applied_over_ssh(
    make_container: Callable[..., Container],
    network: PrivateNetwork,
    tmp_path: Path,
    installed_reconciler: Path,
) -> None:
    key = _keys(tmp_path)
    pub = (tmp_path / "admin_key.pub").read_text()
    hosts = [_host(make_container, network, name, pub) for name in HOSTS]
    known = tmp_path / "known_hosts"
    known.write_text(
        "".join(
            f"{address} {' '.join(c.read_file('/etc/ssh/ssh_host_ed25519_key.pub').split()[:2])}\n"
            for c, address in hosts
        )
    )
    config = tmp_path / "ssh_config"
    config.write_text(
        f"Host *\n  IdentityFile {key}\n  IdentitiesOnly yes\n  UserKnownHostsFile {known}\n"
        "  GlobalKnownHostsFile /dev/null\n  ConnectTimeout 5\n"
    )
    specs = [
        str(_spec(tmp_path, name, address)) for name, (_, address) in zip(HOSTS, hosts, strict=True)
    ]

    ops = gateway_names("ops")
    first_host = hosts[0][0]
    first_host.run(["install", "-d", "-o", "user", "-g", "user", "-m", "700", ops["state_dir"]])
    first_host.write_file(ops["config"], COMMENTED_CONFIG, mode=0o600, user="user")

    def admin(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        argv = [
            str(installed_reconciler),
            *args,
            "--ssh-config",
            str(config),
            "--no-color",
        ]
        # Not from the checkout: the wheel's venv only (cwd would put the checkout on sys.path).
        return subprocess.run(
            network.admin_argv(argv),
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=timeout,
            env=images.installed_env(),
        )

    # 1. Both hosts differ from their specs: one block per host, then the table.
    r = admin("plan", *specs, "--detailed-exitcode")
    assert r.returncode == 2, show(r)
    for name in HOSTS:
        assert f"=== {name} (" in r.stdout and f"Plan for {name} (user user)" in r.stdout, show(r)
    assert r.stdout.count("differs") >= 2, show(r)
    assert "comments" in r.stdout, show(r)  # the commented config was read there and is rewritten

    # 2. Apply both in parallel: each converges, checked from inside each container.
    start = time.monotonic()
    r = admin("apply", *specs, "--yes")
    assert r.returncode == 0, show(r)
    assert r.stdout.count("converged") >= 2, show(r)
    for c, _ in hosts:
        assert_converged(c)
    fleet_apply_s = time.monotonic() - start

    # 3. Converged: the plan says so, and a second apply sends nothing to run.
    r = admin("plan", *specs, "--detailed-exitcode")
    assert r.returncode == 0, show(r)
    runs_before = [
        c.run(["sh", "-c", "wc -l < /root/.local/state/reconciler/runs.jsonl"]).stdout
        for c, _ in hosts
    ]
    r = admin("apply", *specs, "--yes")
    assert r.returncode == 0 and "matches" in r.stdout, show(r)
    runs_after = [
        c.run(["sh", "-c", "wc -l < /root/.local/state/reconciler/runs.jsonl"]).stdout
        for c, _ in hosts
    ]
    assert runs_after == runs_before  # no apply ran there: nothing was sent

    # 4. The link drops in the middle of an apply: the host finishes the reviewed plan anyway,
    #    and the next plan finds it converged.
    first, _ = hosts[0]
    first.systemctl_user("stop", "clawdbot-gateway-ops.service")
    argv = network.admin_argv(
        [
            str(installed_reconciler),
            "apply",
            specs[0],
            "--yes",
            "--ssh-config",
            str(config),
        ]
    )
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=tmp_path,
        env=images.installed_env(),
    )
    assert proc.stdout is not None
    seen: list[str] = []
    planned = False
    for line in proc.stdout:
        seen.append(line)
        if planned and line.strip():  # the first step's progress came back from the host
            break
        planned = planned or "Plan:" in line
    network.cut(0)  # ... and the link dies while the rest of the plan runs there
    rest = proc.stdout.read()
    assert proc.wait(timeout=120) == 1, "".join(seen) + rest
    assert "connection" in rest or "timed out" in rest, rest
    network.restore(0)
    deadline = time.monotonic() + 60
    while (
        first.systemctl_user(
            "is-active", "clawdbot-gateway-ops.service", check=False
        ).stdout.strip()
        != "active"
    ):
        assert time.monotonic() < deadline, "".join(seen)
        time.sleep(1)
    r = admin("plan", specs[0], "--detailed-exitcode")
    assert r.returncode == 0, show(r)

    # 5. One host is down: it is reported, the other converges, the exit code says so.
    hosts[1][0].systemctl_user("stop", "clawdbot-gateway-personal.service")
    first.systemctl_user("stop", "clawdbot-gateway-personal.service")
    hosts[1][0].poweroff()
    r = admin("apply", *specs, "--yes")
    assert r.returncode == 1, show(r)
    assert "unreachable" in r.stdout, show(r)
    assert_converged(first)
    print(f"fleet apply of 2 fresh hosts: {fleet_apply_s:.1f} s")

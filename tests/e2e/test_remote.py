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

import json
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from . import images
from .harness import Container, gateway_names, output_of
from .network import PrivateNetwork
from .test_scenarios import SPECS, assert_converged, show, stat, unit_prop
from .test_timer import run_records

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
    # The host's restic, as test_backup.py binds it: the second host backs up over SSH.
    restic = shutil.which("restic")
    binds = [(Path(restic).resolve(), "/usr/bin/restic")] if restic else []
    c = make_container(network_namespace=namespace, hostname=name, binds_ro=binds)
    # Three ways in, with the same key: root, the gateway user, an admin account with sudo.
    c.run(["useradd", "-m", "-s", "/bin/bash", "admin"])
    for owner, home in (("root", "/root"), ("user", "/home/user"), ("admin", "/home/admin")):
        c.run(["install", "-d", "-m", "700", "-o", owner, "-g", owner, f"{home}/.ssh"])
        c.write_file(f"{home}/.ssh/authorized_keys", pub, mode=0o600, user=owner)
    c.write_file("/etc/sudoers.d/reconciler", f"{SUDOERS}\n", mode=0o440)
    c.run(["systemctl", "start", "ssh"])
    return c, address


# What the admin account may do: run the agent as root (remote/elevate.py says so when missing).
SUDOERS = "admin ALL=(root) NOPASSWD: /usr/bin/python3"
# ... or, narrowly, act as the gateway user (a converged host needs no root-only step).
NARROW = "admin ALL=(user) NOPASSWD: ALL"


# The first host also gets the reconcile timer, which must then run what the remote apply
# installed there. It never fires during the test by itself (12 h): the test starts its service.
TIMER = "reconcile:\n  timer: {enabled: true, interval: 12h, on_boot: 12h, randomized_delay: 0s}\n"
INSTALLED = "/home/user/.local/share/reconciler"
# The second host backs its ops profile up (restic, from the admin machine over SSH too).
BACKUP = """backup:
  repository: ~/backups/gateway
  password_file: ~/.config/restic/password
  schedule: 12h
  profiles: [ops]
"""
# ... and writes its metrics where node_exporter reads them (root's folder, the user's group).
METRICS = "/var/lib/prometheus/node-exporter"


def _spec(folder: Path, name: str, address: str) -> Path:
    text = (SPECS / "two-gateways.yaml").read_text().replace("name: e2e", f"name: {name}")
    # The first host is reached as root, the second as the admin account (sudo).
    login = "root" if name == HOSTS[0] else "admin"
    ssh = f'  user: user\n  ssh:\n    address: "{address}"\n    user: {login}\n'
    more = TIMER if name == HOSTS[0] else f"{BACKUP}metrics:\n  textfile_dir: {METRICS}\n"
    text = text.replace("  user: user\n", ssh, 1) + more
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

    if shutil.which("restic") is None:
        pytest.skip("restic is not installed here (apt-get install restic)")
    hosts[1][0].write_file(
        "/home/user/.config/restic/password", "pw-e2e-remote\n", mode=0o600, user="user"
    )
    ops = gateway_names("ops")
    first_host = hosts[0][0]
    first_host.run(["install", "-d", "-o", "user", "-g", "user", "-m", "700", ops["state_dir"]])
    first_host.write_file(ops["config"], COMMENTED_CONFIG, mode=0o600, user="user")

    def admin(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        # --no-color: plan and apply have it (the day-2 commands never colour).
        color = ["--no-color"] if args[0] in ("plan", "apply") else []
        argv = [str(installed_reconciler), *args, "--ssh-config", str(config), *color]
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

    # 2b. The timer that apply installed runs what it installed there (never a temporary path),
    #     as the user, and repairs the host: its run record says so.
    timer_host = hosts[0][0]
    exec_start = unit_prop(timer_host, "reconciler.service", "ExecStart")
    assert f"{INSTALLED}/agent/reconciler-" in exec_start, exec_start
    assert f".pyz apply {INSTALLED}/spec.yaml --yes" in exec_start, exec_start
    assert "/tmp" not in exec_start and "/root" not in exec_start, exec_start
    assert stat(timer_host, INSTALLED, f"{INSTALLED}/spec.yaml") == [
        "user user 700",
        "user user 600",
    ]
    timer_host.systemctl_user("stop", "clawdbot-gateway-ops.service")
    timer_host.systemctl_user("start", "reconciler.service", check=False, timeout=300)  # waits
    assert unit_prop(timer_host, "reconciler.service", "ExecMainStatus") == "0", timer_host.journal(
        args=["--user-unit", "reconciler.service"]
    )
    records = run_records(timer_host)
    assert records and records[-1]["result"] == "converged", records
    assert "profile[ops].service" in records[-1].get("drift", []), records[-1]
    assert_converged(timer_host)

    # 3. Converged: the plan says so, and a second apply sends nothing to run.
    r = admin("plan", *specs, "--detailed-exitcode")
    assert r.returncode == 0, show(r)
    runs_before = [
        c.run(["sh", "-c", "wc -l < /home/user/.local/state/reconciler/runs.jsonl"]).stdout
        for c, _ in hosts
    ]
    r = admin("apply", *specs, "--yes")
    assert r.returncode == 0 and "matches" in r.stdout, show(r)
    runs_after = [
        c.run(["sh", "-c", "wc -l < /home/user/.local/state/reconciler/runs.jsonl"]).stdout
        for c, _ in hosts
    ]
    assert runs_after == runs_before  # no apply ran there: nothing was sent

    # 3b. Whoever logs in, the plan is the same: root, the gateway user, the sudo admin, on
    #     both hosts (one applied as root, the other as the admin).
    for index, (_, address) in enumerate(hosts):
        for login in ("root", "user", "admin"):
            r = admin(
                "plan", specs[index], "--target", f"ssh://{login}@{address}", "--detailed-exitcode"
            )
            assert r.returncode == 0, f"{login}@{HOSTS[index]}\n" + show(r)
    # ... and the gateway user applies too (its own steps; root's are done): a stopped gateway.
    hosts[0][0].systemctl_user("stop", "clawdbot-gateway-ops.service")
    r = admin("apply", specs[0], "--target", f"ssh://user@{hosts[0][1]}", "--yes")
    assert r.returncode == 0, show(r)
    assert_converged(hosts[0][0])
    # 3c. Day 2 over SSH, nothing installed there: logs, doctor, versions (root), backup run
    #     and list (the sudo admin), each the host's own answer.
    r = admin("logs", specs[0], "ops", "-n", "20")
    assert r.returncode == 0 and "clawdbot-gateway-ops" in r.stdout, show(r)
    r = admin("doctor", specs[0])
    assert r.returncode == 0, show(r)
    r = admin("versions", specs[0])
    assert r.returncode == 0, show(r)
    r = admin("backup", "run", specs[1])
    assert r.returncode == 0, show(r)
    r = admin("backup", "list", specs[1], "--json")
    assert r.returncode == 0 and json.loads(r.stdout), show(r)
    # `logs -f` streams until Ctrl-C, which ends journalctl there too: with the run's own
    # connection, and behind a persisted master (RECONCILER_SSH_PERSIST=60), which outlives the run.
    # Where the persisted master's socket goes (0700, ours; short: a socket path holds 108 bytes).
    runtime = Path(tempfile.mkdtemp(prefix="rt-"))
    for persist in ("0", "60"):
        follow = subprocess.Popen(
            network.admin_argv(
                [
                    str(installed_reconciler),
                    *("logs", specs[0], "ops", "-f", "--ssh-config", str(config)),
                ]
            ),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=tmp_path,
            # A client that does not end: SIGABRT makes it print every thread's stack (below).
            env=dict(
                images.installed_env(),
                PYTHONFAULTHANDLER="1",
                RECONCILER_SSH_PERSIST=persist,
                XDG_RUNTIME_DIR=str(runtime),
            ),
        )
        assert follow.stdout is not None and follow.stdout.readline()
        journal = ["pgrep", "-u", "user", "-f", "journalctl --user -u clawdbot-gateway-ops"]
        assert hosts[0][0].run(journal, check=False).returncode == 0
        follow.send_signal(signal.SIGINT)
        output = output_of(follow, timeout=60)
        assert follow.returncode == 130, output
        deadline = time.monotonic() + 30
        while hosts[0][0].run(journal, check=False).returncode == 0:
            assert time.monotonic() < deadline, (
                f"journalctl -f still runs there (persist {persist})"
            )
            time.sleep(1)
    (master,) = (runtime / "reconciler" / "ssh").iterdir()  # it did outlive the run
    subprocess.run(["ssh", "-o", f"ControlPath={master}", "-O", "exit", "x"], check=True)
    shutil.rmtree(runtime)

    # An admin with the narrow rule only (anything as the gateway user, nothing as root, no
    # python rule): the same empty plan as root's, an apply of the user's steps, empty again.
    second = hosts[1][0]
    since = second.run(["date", "+@%s"]).stdout.strip()
    second.write_file("/etc/sudoers.d/reconciler", f"{NARROW}\n", mode=0o440)
    r = admin("plan", specs[1], "--detailed-exitcode")
    assert r.returncode == 0, show(r)
    assert "neither root nor" not in r.stderr, show(r)  # no complaint about the python rule
    second.systemctl_user("stop", "clawdbot-gateway-ops.service")
    prom = f"{METRICS}/reconciler.prom"
    second.run(["rm", "-f", prom])  # the root apply's; the admin's apply writes its own
    runs_before = len(run_records(second))
    r = admin("apply", specs[1], "--yes")
    assert r.returncode == 0 and "profile[ops].service" in r.stdout, show(r)
    assert "could not write" not in r.stdout + r.stderr, show(r)
    assert_converged(second)
    # ... its metrics and run record written as the user, where the user's timer writes them.
    assert stat(second, prom) == ["user user 644"], show(r)
    assert len(run_records(second)) == runs_before + 1, show(r)
    r = admin("plan", specs[1], "--detailed-exitcode")
    assert r.returncode == 0, show(r)
    # ... and day 2 as that admin: each the host's own answer, read as the user through sudo.
    r = admin("logs", specs[1], "ops", "-n", "20")
    assert r.returncode == 0 and "clawdbot-gateway-ops" in r.stdout, show(r)
    r = admin("doctor", specs[1], "--format", "json")
    assert r.returncode == 0 and json.loads(r.stdout)["healthy"], show(r)
    r = admin("versions", specs[1], "--format", "json")
    assert r.returncode == 0 and json.loads(r.stdout), show(r)
    r = admin("status", specs[1], "--json")
    assert r.returncode == 0, show(r)
    assert json.loads(r.stdout)["last_run"]["result"] == "converged", show(r)
    assert json.loads(r.stdout)["timer"]["known"], show(r)  # the user's manager was asked
    r = admin("backup", "list", specs[1], "--json")
    assert r.returncode == 0 and json.loads(r.stdout), show(r)
    # ... the user's steps ran as the user (sudo's own log, the journal), nothing as root.
    journal = second.run(
        ["journalctl", "-t", "sudo", "-o", "cat", "--no-pager", "--since", since]
    ).stdout.splitlines()
    ran = [line for line in journal if "COMMAND=" in line and "not allowed" not in line]
    assert any("USER=user" in line for line in ran), journal
    assert not [x for x in ran if "USER=root" in x and "COMMAND=list" not in x], journal

    # An admin without any sudo rule: told the exact sudoers lines, never a traceback.
    second.run(["rm", "/etc/sudoers.d/reconciler"])
    r = admin("plan", specs[1], "--detailed-exitcode")
    assert r.returncode != 0 and SUDOERS in r.stdout + r.stderr, show(r)
    assert NARROW in r.stdout + r.stderr, show(r)
    assert "Traceback" not in r.stdout + r.stderr, show(r)
    second.write_file("/etc/sudoers.d/reconciler", f"{SUDOERS}\n", mode=0o440)

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

    # 4b. Day 2 across both hosts (issue 20), cheap steps only: one doctor document per host;
    #     suspend both at once and resume each there (root on one host, the sudo admin on the
    #     other), seen by the timer's own run; a backup restored there, into staging and in place.
    day2_start = time.monotonic()
    r = admin("doctor", *specs, "--format", "json")
    assert r.returncode == 0, show(r)
    doctors = json.loads(r.stdout)
    assert [(d["host"], d["result"], d["doctor"]["healthy"]) for d in doctors] == [
        (name, "ok", True) for name in HOSTS
    ], show(r)
    r = admin("status", *specs)
    assert r.returncode == 0 and r.stdout.startswith("HOST "), show(r)
    suspension = "/home/user/.local/state/reconciler/suspended.json"
    r = admin("suspend", *specs, "--reason", "e2e maintenance")  # both at once: one table
    assert r.returncode == 0 and r.stdout.count(" done ") == 2, show(r)
    for c, _ in hosts:
        assert stat(c, suspension) == ["user user 600"], show(r)
    first.systemctl_user("start", "reconciler.service", check=False, timeout=300)
    assert run_records(first)[-1]["result"] == "suspended", run_records(first)[-1]
    for c, spec in ((first, specs[0]), (hosts[1][0], specs[1])):
        r = admin("resume", spec)
        assert r.returncode == 0 and "Resumed unattended runs" in r.stdout, show(r)
        assert c.run(["test", "-e", suspension], check=False).returncode == 1
    second = hosts[1][0]
    r = admin("backup", "restore", specs[1], "ops")
    assert r.returncode == 0 and "restored into /home/user/" in r.stdout, show(r)
    staging = r.stdout.split("restored into ")[1].split()[0]
    assert stat(second, staging) == ["user user 700"], show(r)
    r = admin("backup", "restore", specs[1], "ops", "--in-place")
    assert r.returncode == 0 and "restored in place" in r.stdout, show(r)
    state_dir = gateway_names("ops")["state_dir"]
    aside = second.run(["sh", "-c", f"ls -d {state_dir}.before-restore-*"]).stdout.split()
    assert len(aside) == 1, aside
    assert (
        second.systemctl_user(
            "is-active", "clawdbot-gateway-ops.service", check=False
        ).stdout.strip()
        == "active"
    )
    day2_s = time.monotonic() - day2_start

    # 5. One host is down: it is reported, the other converges, the exit code says so.
    hosts[1][0].systemctl_user("stop", "clawdbot-gateway-personal.service")
    first.systemctl_user("stop", "clawdbot-gateway-personal.service")
    hosts[1][0].poweroff()
    r = admin("apply", *specs, "--yes")
    assert r.returncode == 1, show(r)
    assert "unreachable" in r.stdout, show(r)
    assert_converged(first)
    print(f"fleet apply of 2 fresh hosts: {fleet_apply_s:.1f} s")
    print(f"day 2 across hosts, suspend/resume, restore (step 4b): {day2_s:.1f} s")

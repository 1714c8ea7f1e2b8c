"""The e2e harness itself: containers boot, run things as root and as the user, keep lingering
user services across a reboot, run the real gateway, and leave nothing behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from . import harness, images
from .harness import CommandFailed, Container, install_gateway_service, output_of

E2E_DIR = Path(__file__).resolve().parent
PORT = 18789


def test_boot_and_run(container: Container) -> None:
    assert container.run(["systemctl", "is-system-running"], check=False).stdout.strip() in (
        "running",
        "degraded",
    )
    assert container.run(["hostname"]).stdout.strip() == "e2e"
    assert container.run(["id", "-u"], user="user").stdout.strip() == "1000"
    assert container.run(
        ["sh", "-c", "echo $HOME $XDG_RUNTIME_DIR"], user="user"
    ).stdout.split() == [
        "/home/user",
        "/run/user/1000",
    ]
    assert container.run(["pwd"], user="user").stdout.strip() == "/home/user"
    # the project source, read-only, importable from the /opt/r venv and via the wrapper
    r = container.run(["/opt/r/bin/python", "-c", "import reconciler; print(reconciler.__file__)"])
    assert r.stdout.strip() == "/src/reconciler/__init__.py"
    assert container.run(["reconciler", "--help"], user="user").returncode == 0
    assert container.run(["touch", "/src/x"], check=False).returncode != 0
    assert container.run(["clawdbot", "--version"], user="user").stdout.strip() == "2026.1.24-3"
    # sudo must not warn about the host name
    assert "unable to resolve" not in container.run(["sudo", "-n", "true"]).stderr

    with pytest.raises(CommandFailed) as ei:
        container.run(["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert ei.value.returncode == 3 and "err" in str(ei.value)
    assert container.run(["cat"], input="piped\n").stdout == "piped\n"
    assert container.run(["sh", "-c", 'echo "$A"'], env={"A": "b c"}).stdout == "b c\n"
    t0 = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired):
        container.run(["sleep", "30"], timeout=1)
    assert time.monotonic() - t0 < 10
    assert "sleep 30" not in container.run(["ps", "-eo", "args"]).stdout


def test_write_and_read_file(container: Container) -> None:
    container.write_file("/home/user/a/b/c.txt", "hé\n", mode=0o600, user="user")
    assert container.read_file("/home/user/a/b/c.txt") == "hé\n"
    st = container.run(["stat", "-c", "%U %a", "/home/user/a/b/c.txt", "/home/user/a"]).stdout
    assert st.split("\n")[:2] == ["user 600", "user 755"]
    container.write_file("/etc/e2e-root", b"\x00bin", mode=0o640)
    assert container.run(["stat", "-c", "%U %a %s", "/etc/e2e-root"]).stdout.strip() == "root 640 4"


def test_linger_starts_user_manager(container: Container) -> None:
    r = container.run(["systemctl", "is-active", "user@1000.service"], check=False)
    assert r.stdout.strip() == "inactive"
    container.run(["loginctl", "enable-linger", "user"])
    assert container.exists("/var/lib/systemd/linger/user")
    container.wait_unit("user@1000.service", timeout=30)
    assert (
        container.run(["loginctl", "show-user", "user", "-p", "Linger", "--value"]).stdout
        == "yes\n"
    )
    # the user's own manager answers on its bus
    r = container.systemctl_user("is-system-running", check=False)
    assert r.stdout.strip() in ("running", "degraded"), r


def test_user_service_survives_reboot(container: Container) -> None:
    unit = install_gateway_service(container, port=PORT)
    assert unit == "clawdbot-gateway.service"
    container.wait_port(PORT, timeout=20)
    status, body = container.http_get(PORT)
    assert status == 200 and "stand-in" in body
    before = container.systemctl_user("show", "-p", "InvocationID", "--value", unit).stdout

    container.reboot()  # nothing is re-run after this: linger + WantedBy=default.target do it
    container.wait_port(PORT, timeout=30)
    status, body = container.http_get(PORT)
    assert status == 200 and "stand-in" in body
    assert container.systemctl_user("is-active", unit).stdout.strip() == "active"
    assert container.systemctl_user("is-enabled", unit).stdout.strip() == "enabled"
    assert container.boots == 2
    after = container.systemctl_user("show", "-p", "InvocationID", "--value", unit).stdout
    assert after.strip() and after != before  # started anew by the new boot


def test_parallel_containers_are_isolated(make_container) -> None:  # type: ignore[no-untyped-def]
    a, b = make_container(), make_container()
    assert set(a.cgroups).isdisjoint(b.cgroups)
    for c in (a, b):  # the same port in both: each has its own loopback
        install_gateway_service(c, port=PORT)
    for c in (a, b):
        c.wait_port(PORT, timeout=20)
    b.run(["systemd-run", "--unit=only-in-b", "sleep", "300"])
    assert b.run(["systemctl", "is-active", "only-in-b"], check=False).stdout.strip() == "active"
    assert a.run(["systemctl", "is-active", "only-in-b"], check=False).stdout.strip() == "inactive"
    ids = {c.read_file("/etc/machine-id") for c in (a, b)}
    assert len(ids) == 2


def test_fake_tailscale_on_path(container: Container) -> None:
    if not container.fake_tailscale_installed:
        pytest.skip(f"{harness.FAKEHOST_BIN}/tailscale does not exist yet")
    assert container.run(["sh", "-c", "command -v tailscale"]).stdout.strip() == (
        "/usr/local/bin/tailscale"
    )
    for user in (None, "user", None):  # root first, then the user, then root again
        r = container.run(["tailscale", "status", "--json"], user=user, check=False)
        assert r.returncode == 0 and "Traceback" not in r.stderr, r
        assert "BackendState" in json.loads(r.stdout)


# ------------------------------------------------------------------------ teardown guarantees


def _leftovers(info: dict) -> list[str]:  # type: ignore[type-arg]
    found = []
    for pid, argv in harness.processes_mentioning(info["root"]):
        found.append(f"process {pid}: {argv}")
    for pid, argv in harness.processes_mentioning(info["name"]):
        found.append(f"process {pid}: {argv}")
    for pid in (info["nspawn"], info["pid1"]):
        if os.path.exists(f"/proc/{pid}") and "systemd" in harness._comm(pid):
            found.append(f"pid {pid} ({harness._comm(pid)}) still alive")
    for p in (info["workdir"], *info["cgroups"]):
        if os.path.exists(p):
            found.append(f"{p} still exists")
    nspawns = [
        (pid, argv)
        for pid, argv in harness.processes_mentioning("systemd-nspawn")
        if argv and os.path.basename(argv[0]) == "systemd-nspawn" and info["root"] in " ".join(argv)
    ]
    found += [f"systemd-nspawn {pid}: {argv}" for pid, argv in nspawns]
    return found


@pytest.mark.parametrize("how", ["pass", "fail", "sigint", "sigterm"])
def test_fixture_teardown_leaves_nothing(how: str, tmp_path: Path, e2e_rootfs: Path) -> None:
    """A child pytest uses the `container` fixture; whether its test passes, fails or the run
    is interrupted (Ctrl-C, SIGTERM), no systemd-nspawn, container process, cgroup or rootfs
    copy may remain afterwards."""
    out = tmp_path / "probe.json"
    env = dict(
        os.environ,
        E2E_PROBE_OUT=str(out),
        E2E_PROBE_MODE={"pass": "pass", "fail": "fail"}.get(how, "hang"),
        PYTHONFAULTHANDLER="1",  # a child that hangs prints where (output_of)
    )
    argv = [
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "-q",
        "-rA",
        str(E2E_DIR / "_probe_fixture.py") + "::test_probe_container",
    ]
    child = subprocess.Popen(
        argv, cwd=images.REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        if how in ("sigint", "sigterm"):
            deadline = time.monotonic() + 60
            while not out.exists():
                assert child.poll() is None, child.communicate()[0]
                assert time.monotonic() < deadline, "probe never booted"
                time.sleep(0.1)
            time.sleep(0.5)
            child.send_signal(signal.SIGINT if how == "sigint" else signal.SIGTERM)
        # Generous: teardown powers the container off (up to 20 s, then kills it) and deletes its
        # rootfs copy, on a machine where the fast suite and a cache build run at the same time.
        output = output_of(child, timeout=180)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    info = json.loads(out.read_text())
    assert _leftovers(info) == [], output
    if how == "pass":
        assert child.returncode == 0, output
    elif how == "fail":
        assert child.returncode == 1, output
        assert "deliberate failure" in output
        # the failure report carries the container's logs
        assert f"e2e container {info['name']}" in output, output
        assert "systemd-nspawn log" in output and "journalctl" in output, output
    elif how == "sigint":
        assert child.returncode == 2, output  # pytest: interrupted
    else:
        assert child.returncode == -signal.SIGTERM, output


def test_skip_policy(tmp_path: Path) -> None:
    """Missing tools skip with the reason; with RECONCILER_E2E_REQUIRED=1 they fail."""
    empty = tmp_path / "bin"
    empty.mkdir()
    argv = [
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "-q",
        "-rA",
        str(E2E_DIR / "_probe_fixture.py") + "::test_probe_trivial",
    ]
    base = {k: v for k, v in os.environ.items() if k != "RECONCILER_E2E_REQUIRED"}
    base["PATH"] = str(empty)
    r = subprocess.run(argv, cwd=images.REPO, env=base, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout
    assert "1 skipped" in r.stdout and "debootstrap not found" in r.stdout, r.stdout
    assert "systemd-nspawn not found" in r.stdout and "nsenter not found" in r.stdout
    r = subprocess.run(
        argv,
        cwd=images.REPO,
        env=dict(base, RECONCILER_E2E_REQUIRED="1"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 1, r.stdout
    # pytest.fail() in setup: reported as an error, exit status 1 like any failure
    assert "1 error" in r.stdout and "RECONCILER_E2E_REQUIRED=1" in r.stdout, r.stdout


# ------------------------------------------------------------------------ the real gateway


def test_real_gateway_runs_as_lingering_user_service(make_container) -> None:  # type: ignore[no-untyped-def]
    c: Container = make_container(real_gateway=True)
    assert c.run(["clawdbot", "--version"], user="user", timeout=120).stdout.strip() == (
        images.GATEWAY_VERSION
    )
    assert c.run(["node", "--version"], user="user").stdout.startswith("v22.")
    unit = install_gateway_service(c, port=PORT)
    waited = c.wait_port(PORT, timeout=180)  # cold start: compiles its sources first
    status, body = c.http_get(PORT)
    assert status == 200 and "<title>Clawdbot Control</title>" in body, body[:500]
    r = c.run(
        ["clawdbot", "gateway", "health", "--url", f"ws://127.0.0.1:{PORT}", "--json"],
        user="user",
        timeout=120,
    )
    assert json.loads(r.stdout)["ok"] is True
    assert c.systemctl_user("is-active", unit).stdout.strip() == "active"
    # the gateway keeps its own state private (docs/host-facts.md §1)
    st = c.run(["stat", "-c", "%a", "/home/user/.clawdbot", "/home/user/.clawdbot/clawdbot.json"])
    assert st.stdout.split() == ["700", "600"]
    print(f"real gateway listening {waited:.1f}s after enable --now")

"""Root is never a confused deputy (issue 11 #1-4), on real systemd with a real second user.

One container, one scenario: the user `user` attacks as the issue reported, with real symlinks,
while root applies; another account, `bob`, has state the user must never reach through root.
"""

from __future__ import annotations

import textwrap

import pytest

from .harness import Container
from .test_scenarios import SPEC_PATH, USER, apply, install_spec, reconciler, show, stat

pytestmark = pytest.mark.e2e

BOB = "bob"
BOB_STATE = f"/home/{BOB}/.clawdbot-ops"
BOB_TOKEN = "BOB-TOKEN-5f4dcc3b"

# Runs `reconciler apply SPEC` on a terminal; at the confirmation prompt, runs argv[2] as the
# user (the swap), then answers y. Prints the whole session; exits with apply's status.
PROMPT_DRIVER = """
import os, pty, subprocess, sys

pid, fd = pty.fork()
if pid == 0:
    os.execvp("reconciler", ["reconciler", "apply", sys.argv[1], "--no-color"])

def read_until(marker):
    data = b""
    while marker not in data:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        data += chunk
    return data

out = read_until(b"Apply these changes?")
if b"Apply these changes?" in out:
    subprocess.run(["runuser", "-u", "user", "--", "sh", "-ec", sys.argv[2]], check=True)
    os.write(fd, b"y\\n")
    out += read_until(b"\\0never")
_, status = os.waitpid(pid, 0)
sys.stdout.write(out.decode(errors="replace"))
sys.exit(os.waitstatus_to_exitcode(status))
"""


def as_user(c: Container, script: str, user: str = USER) -> None:
    c.run(["sh", "-euc", textwrap.dedent(script)], user=user)


def bob_state(c: Container) -> list[str]:
    return stat(c, BOB_STATE, f"{BOB_STATE}/credentials", f"{BOB_STATE}/credentials/token")


def test_root_apply_cannot_be_turned_against_the_machine(container: Container) -> None:
    c = container
    c.run(["useradd", "-m", "-u", "1001", "-U", "-s", "/bin/bash", BOB])
    as_user(
        c,
        f"""
        mkdir -m 700 {BOB_STATE} {BOB_STATE}/credentials
        printf '%s\\n' {BOB_TOKEN} > {BOB_STATE}/credentials/token
        chmod 600 {BOB_STATE}/credentials/token
        """,
        user=BOB,
    )
    bob_before = bob_state(c)
    assert bob_before == ["bob bob 700", "bob bob 700", "bob bob 600"]
    spec = install_spec(c)
    apply(c, spec)  # converged: the attacks start from a working host

    # 1. validate refuses system paths and other users' homes (file:line, the fix)
    for bad, why in (("/etc", "inside the system directory /etc"), (BOB_STATE, "/home")):
        text = c.read_file(SPEC_PATH).replace(
            "  ops:\n    port: 18809\n", f"  ops:\n    port: 18809\n    state_dir: {bad}\n"
        )
        c.write_file("/root/bad.yaml", text)
        r = reconciler(c, "validate", "/root/bad.yaml")
        assert r.returncode == 1 and why in r.stderr + r.stdout, show(r)
        assert "bad.yaml:" in r.stderr + r.stdout and "hint:" in r.stderr + r.stdout, show(r)

    # 3. at the prompt, ~/.clawdbot-personal (shown as too open) becomes a link to bob's state
    as_user(c, "chmod 755 ~/.clawdbot-personal")
    c.write_file("/root/prompt.py", PROMPT_DRIVER)
    swap = "mv ~/.clawdbot-personal ~/personal.away && ln -s /home/bob/.clawdbot-ops ~/.clawdbot-personal"
    r = c.run(["python3", "/root/prompt.py", spec, swap], check=False, timeout=300)
    assert "Apply these changes?" in r.stdout, show(r)
    assert r.returncode == 1 and "symlink" in r.stdout, show(r)
    assert bob_state(c) == bob_before
    assert c.read_file(f"{BOB_STATE}/credentials/token").strip() == BOB_TOKEN
    as_user(c, "rm ~/.clawdbot-personal && mv ~/personal.away ~/.clawdbot-personal")

    # 2. a symlinked parent: ~/.local/share -> /etc; root must not create /etc/clawdbot-ops
    as_user(c, "mkdir -p ~/.local && rm -rf ~/.local/share && ln -s /etc ~/.local/share")
    linked = c.read_file(SPEC_PATH).replace(
        "  ops:\n    port: 18809\n",
        "  ops:\n    port: 18809\n    state_dir: ~/.local/share/clawdbot-ops\n",
    )
    c.write_file("/root/linked.yaml", linked)
    r = reconciler(c, "apply", "/root/linked.yaml", "--yes", "--no-color")
    assert r.returncode == 1 and "Permission denied" in r.stdout + r.stderr, show(r)
    assert not c.exists("/etc/clawdbot-ops")
    assert c.run(["find", "/etc", "-user", USER]).stdout == ""

    # 1. at apply time: a data root holding a directory root owns is refused, never chown-ed
    c.run(["install", "-d", "-m", "755", "/srv/clawd", "/srv/clawd/ops"])
    rooted = linked.replace("  user: user\n", "  user: user\n  data_roots: [/srv/clawd]\n").replace(
        "~/.local/share/clawdbot-ops", "/srv/clawd/ops"
    )
    c.write_file("/root/rooted.yaml", rooted)
    r = reconciler(c, "apply", "/root/rooted.yaml", "--yes", "--no-color")
    assert r.returncode == 1, show(r)
    assert "/srv/clawd/ops exists and belongs to root, not user" in r.stdout + r.stderr, show(r)
    assert stat(c, "/srv/clawd/ops") == ["root root 755"]

    # 4. a unit file linked to a root-only file: root's probe and plan never show its content
    as_user(
        c,
        "ln -s /etc/shadow ~/.config/systemd/user/clawdbot-gateway-evil.service",
    )
    r = reconciler(c, "probe", spec, "--out", "/root/snap.json")
    assert r.returncode == 0, show(r)
    snapshot = c.read_file("/root/snap.json")
    assert "clawdbot-gateway-evil.service" in snapshot
    shadow_root = c.read_file("/etc/shadow").splitlines()[0]
    assert shadow_root.startswith("root:") and shadow_root not in snapshot
    r = reconciler(c, "plan", spec, "--no-color")
    assert shadow_root not in r.stdout + r.stderr, show(r)
    assert bob_state(c) == bob_before

"""Backup figures with the real restic on a generated, realistic gateway state.

    .venv/bin/python bench/backup_bench.py [--sessions 3000] [--workspace-mb 300] [--dir DIR]

DIR (default: a new directory under your home) must be inside the home, and is left behind.

Generates a profile (config, credentials, SESSIONS session files of a few KB each, a workspace
of WORKSPACE_MB: half text, half incompressible binary), then times through the CLI:
`backup init`, a first `backup run`, an unchanged incremental `backup run`, `backup verify`
(restore --verify + comparison + check --read-data-subset 10%), and reports the repository size.
`consistency: live` here: stopping a gateway needs systemd (the e2e suite measures downtime).
"""

from __future__ import annotations

import argparse
import getpass
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def generate(root: Path, sessions: int, workspace_mb: int) -> None:
    rng = random.Random(14)
    state = root / ".clawdbot-ops"
    (state / "credentials").mkdir(parents=True)
    (state / "clawdbot.json").write_text('{"gateway": {"port": 18789}}\n')
    (state / "credentials/whatsapp.json").write_text('{"creds": "x"}\n')
    words = [f"word{i}" for i in range(2000)]
    for i in range(sessions):
        agent = state / "agents" / f"agent{i % 5}" / "sessions"
        agent.mkdir(parents=True, exist_ok=True)
        lines = [
            f'{{"role": "user", "text": "{" ".join(rng.choices(words, k=40))}"}}'
            for _ in range(rng.randint(5, 40))
        ]
        (agent / f"{i:05d}.jsonl").write_text("\n".join(lines) + "\n")
    workspace = root / "clawd-ops"
    workspace.mkdir()
    chunk = 1 << 20
    for i in range(workspace_mb):
        path = workspace / f"dir{i % 10}" / f"file{i:04d}.{'bin' if i % 2 else 'md'}"
        path.parent.mkdir(exist_ok=True)
        if i % 2:
            path.write_bytes(os.urandom(chunk))
        else:
            path.write_text(" ".join(rng.choices(words, k=chunk // 8)))


def timed(*args: str) -> float:
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "reconciler", *args], capture_output=True, text=True, check=False
    )
    elapsed = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{proc.stdout}{proc.stderr}")
    print(proc.stdout.strip())
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", type=int, default=3000)
    parser.add_argument("--workspace-mb", type=int, default=300)
    parser.add_argument("--dir", type=Path)
    args = parser.parse_args()
    # Under the home: spec rules keep gateway state out of /tmp.
    base = Path(args.dir or tempfile.mkdtemp(prefix="backup-bench-", dir=Path.home()))
    rel = base.relative_to(Path.home())
    home = base / "home"
    home.mkdir(parents=True)
    t0 = time.monotonic()
    generate(home, args.sessions, args.workspace_mb)
    print(f"generated in {time.monotonic() - t0:.1f} s")
    password = base / "password"
    password.write_text(os.urandom(16).hex() + "\n")
    os.chmod(password, 0o600)
    spec = base / "spec.yaml"
    spec.write_text(
        "apiVersion: reconciler/v1\n"
        f"host: {{name: {socket.gethostname()}, user: {getpass.getuser()}}}\n"
        f"profiles:\n  ops: {{port: 18789, state_dir: ~/{rel}/home/.clawdbot-ops, "
        f"workspace: ~/{rel}/home/clawd-ops}}\n"
        f"backup:\n  repository: ~/{rel}/repo\n  password_file: ~/{rel}/password\n"
        "  consistency: live\n"
    )
    os.environ["XDG_STATE_HOME"] = str(base / "state")
    os.environ["RESTIC_CACHE_DIR"] = str(base / "cache")
    size = subprocess.run(["du", "-sh", str(home)], capture_output=True, text=True).stdout.split()[
        0
    ]
    print(f"state: {args.sessions} session files, {args.workspace_mb} MB workspace, du {size}")
    print(f"init:                  {timed('backup', 'init', str(spec)):.1f} s")
    print(f"first backup:          {timed('backup', 'run', str(spec)):.1f} s")
    print(f"unchanged incremental: {timed('backup', 'run', str(spec)):.1f} s")
    print(f"verify:                {timed('backup', 'verify', str(spec)):.1f} s")
    repo = subprocess.run(["du", "-sh", f"{base}/repo"], capture_output=True, text=True)
    print(f"repository size:       {repo.stdout.split()[0]}")
    print(f"load average:          {os.getloadavg()}")


if __name__ == "__main__":
    main()

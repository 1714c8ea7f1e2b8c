"""Where a gateway's first start goes: cold, warm restart, and a first start after a warm-up.

    .venv/bin/python bench/first_start_bench.py --node NODE --entry ENTRY --state DIR [--runs 3]

Not a test: a measurement (issue 21 item 5, "shorter downtime"). ENTRY is an installed
openclaw's `openclaw.mjs` (e.g. `<prefix>/2026.9.6/node_modules/openclaw/openclaw.mjs`), NODE
the node that runs it, DIR a profile's state directory to start from (e.g. a clawdbot profile's,
which openclaw migrates on its first start: copied, never touched). Each run, in a scratch
directory of its own, as the calling user, the gateway on a free loopback port:

- cold: a fresh copy of DIR and an empty node compile cache (`NODE_COMPILE_CACHE`, which
  openclaw 2026.9.x also enables by itself, below `os.tmpdir()`, keyed by its version);
- warm restart: the same gateway stopped and started again (state migrated, cache filled);
- warmed first start: a fresh copy of DIR with the compile cache a warm-up filled: the new
  version's gateway started once on a throwaway state directory and port, then stopped, while
  nothing else of the profile changed (what a switch can do while the old version serves).

The time is from the spawn until the gateway logs `ready` (openclaw 2026.9.x; it answers HTTP a
few seconds before). Prints one line per run and the medians.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import time
from pathlib import Path


def free_port() -> int:
    """A loopback port with 20 free above it (a gateway takes a few above its own)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port < 60000:
            return port


def start(node: str, entry: str, state: Path, cache: Path, port: int) -> float:
    """Start the gateway on `state`, wait for `ready`, stop it: seconds until ready."""
    env = {
        "PATH": f"{Path(node).parent}:/usr/bin:/bin",
        "HOME": str(state.parent),
        "OPENCLAW_STATE_DIR": str(state),
        "OPENCLAW_CONFIG_PATH": str(config_of(state)),
        "OPENCLAW_GATEWAY_PORT": str(port),
        "OPENCLAW_GATEWAY_TOKEN": secrets.token_hex(24),
        "NODE_COMPILE_CACHE": str(cache),
        "TMPDIR": str(state.parent / "tmp"),
    }
    (state.parent / "tmp").mkdir(exist_ok=True)
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [node, entry, "gateway", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    took = None
    assert proc.stdout is not None
    deadline = t0 + 600
    for raw in proc.stdout:
        if b"[gateway]" in raw and raw.rstrip().endswith(b"ready"):
            took = time.monotonic() - t0
            break
        if time.monotonic() > deadline:
            break
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    if took is None:
        raise RuntimeError(f"no `ready` from the gateway (exit {proc.returncode})")
    return took


def config_of(state: Path) -> Path:
    legacy = state / "clawdbot.json"
    return legacy if legacy.exists() else state / "openclaw.json"


def fresh_state(template: Path, where: Path, port: int) -> Path:
    state = where / "state"
    if template.is_dir():
        shutil.copytree(template, state, symlinks=True)
    else:
        state.mkdir(mode=0o700)
    if not config_of(state).exists():
        config_of(state).write_text(
            f'{{ gateway: {{ mode: "local", port: {port}, bind: "loopback" }} }}\n'
        )
    return state


def one_run(node: str, entry: str, template: Path) -> dict[str, float]:
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="first-start-") as tmp:
        root = Path(tmp)
        for part in ("cold", "warmed", "warmup"):
            (root / part).mkdir()
        cache = root / "cache-cold"
        port = free_port()
        state = fresh_state(template, root / "cold", port)
        figures["cold"] = start(node, entry, state, cache, port)
        figures["warm_restart"] = start(node, entry, state, cache, port)
        warm = root / "cache-warmed"
        throwaway = fresh_state(Path("/nonexistent"), root / "warmup", free_port())
        t0 = time.monotonic()
        start(node, entry, throwaway, warm, free_port())
        figures["warmup"] = time.monotonic() - t0
        port = free_port()
        figures["warmed_first"] = start(
            node, entry, fresh_state(template, root / "warmed", port), warm, port
        )
    return figures


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--node", required=True)
    ap.add_argument("--entry", required=True)
    ap.add_argument("--state", required=True, type=Path)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    runs = []
    for i in range(args.runs):
        figures = one_run(args.node, args.entry, args.state)
        runs.append(figures)
        print(f"run {i + 1}: " + ", ".join(f"{k} {v:.1f}s" for k, v in figures.items()))
        print(f"  load average {os.getloadavg()[0]:.1f}", flush=True)
    medians = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    print("median: " + ", ".join(f"{k} {v:.1f}s" for k, v in medians.items()))
    ratio = medians["warmed_first"] / medians["warm_restart"]
    print(
        f"warmed first start / warm restart: {ratio:.2f} (cold: "
        f"{medians['cold'] / medians['warm_restart']:.2f})"
    )


if __name__ == "__main__":
    main()

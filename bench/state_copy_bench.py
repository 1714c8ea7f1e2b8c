"""Time and disk of the switch's state-directory copy and its restore (reconciler/shell/switch.py
`snapshot_state` / `restore_state`), on a synthetic state directory.

    .venv/bin/python bench/state_copy_bench.py [--runs N] [--files N] [--size BYTES] [--dir D]

The state directory holds `--files` session files of `--size` random bytes each (default 200 of
50 kB, about 10 MB), under `--dir` (default /var/tmp: a real disk, not a tmpfs). Each run copies it
into a fresh memory directory (what a switch does with the gateway stopped), puts it back (what a
rollback does), then forgets the copies. Prints the disk the copy took and the median of each.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from reconciler.shell.switch import forget_copies, restore_state, snapshot_state


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--size", type=int, default=50_000)
    parser.add_argument("--dir", default="/var/tmp")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(dir=args.dir, prefix="state-copy-bench-"))
    try:
        state, memory = root / "state", root / "memory"
        sessions = state / "agents" / "main" / "sessions"
        sessions.mkdir(parents=True)
        for i in range(args.files):
            (sessions / f"s{i}.jsonl").write_bytes(os.urandom(args.size))
        copies: list[float] = []
        restores: list[float] = []
        copied_bytes = 0
        for _ in range(args.runs):
            began = time.monotonic()
            copied_bytes = snapshot_state(memory, "ops", state)["bytes"]
            copies.append(time.monotonic() - began)
            began = time.monotonic()
            restore_state(memory, "ops", state)
            restores.append(time.monotonic() - began)
            forget_copies(memory, "ops")
        print(
            f"{args.files} files of {args.size} B: copy {copied_bytes / 1e6:.1f} MB on disk; "
            f"copy median {statistics.median(copies):.3f} s, "
            f"put back median {statistics.median(restores):.3f} s ({args.runs} runs)"
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()

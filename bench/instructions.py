"""Count the instructions a command executes: a start-up figure the machine's load cannot move.

    .venv/bin/python bench/instructions.py [--python PY] [--reconciler BIN] [--spec FILE]

On a shared 2-core machine wall and CPU times of a 100 ms command move by half with the load;
the number of instructions executed (valgrind's callgrind, user space) does not: the same
command counts the same within 0.1%. It is what to compare before and after a start-up change.
Time is about proportional (this machine, idle: roughly 4-5 G instructions per second for
CPython start-up code), so the figures are a ratio, not milliseconds.

Measures: the bare interpreter (`-I -S -c pass`, the floor), the interpreter with site,
`reconciler --version` and `reconciler validate SPEC` not cached (`RECONCILER_NO_CACHE=1`: an
edited spec, the case `validate` is for). Needs valgrind
(`apt-get install valgrind`). Run it against the installed wheel (`--reconciler`), which is
what users run: an editable install adds its import hook to every start.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COLLECTED = re.compile(r"Collected : (\d+)")

# N four-field classes made dataclasses with the given options: what building one costs.
DATACLASSES = """
import sys
from dataclasses import dataclass
options = eval(sys.argv[2])
for i in range(int(sys.argv[1])):
    ns = {"__annotations__": {"a": "int", "b": "str", "c": "tuple[str, ...]", "d": "int"}, "d": 0}
    dataclass(**options)(type(f"C{i}", (), ns))
"""


def instructions(argv: list[str], env: dict[str, str]) -> int:
    """Instructions executed by `argv` and its children (callgrind's total)."""
    done = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--trace-children=yes",
            "--callgrind-out-file=/dev/null",
            *argv,
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    counts = [int(n) for n in COLLECTED.findall(done.stderr)]
    if done.returncode != 0 or not counts:
        sys.exit(f"{' '.join(argv)}: exit {done.returncode}\n{done.stderr[-2000:]}")
    return sum(counts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--reconciler", default=shutil.which("reconciler") or "reconciler")
    parser.add_argument("--spec", type=Path, default=REPO / "specs" / "vm102.yaml")
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed (apt-get install valgrind)")
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "XDG_CACHE_HOME": cache}
        uncached = {**env, "RECONCILER_NO_CACHE": "1"}
        rows = [
            ("python -I -S -c pass (floor)", [args.python, "-I", "-S", "-c", "pass"], env),
            ("python -c pass", [args.python, "-c", "pass"], env),
            ("reconciler --version", [args.reconciler, "--version"], env),
            (
                "reconciler validate (not cached)",
                [args.reconciler, "validate", str(args.spec)],
                uncached,
            ),
        ]
        floor = 0
        for label, argv, run_env in rows:
            count = instructions(argv, run_env)
            floor = floor or count
            print(f"{label:36} {count / 1e6:8.1f} M instructions  {count / floor:5.1f}x floor")
        # What one dataclass costs to build (the plan path builds about 140 at import).
        none = instructions([args.python, "-c", DATACLASSES, "0", "{}"], env)
        for options in ("{'frozen': True}", "{}", "{'repr': False, 'eq': False}"):
            count = instructions([args.python, "-c", DATACLASSES, "150", options], env)
            print(f"one dataclass({options}): {(count - none) / 150 / 1e6:.2f} M instructions")


if __name__ == "__main__":
    main()

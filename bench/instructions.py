"""Count the instructions a command executes: a start-up figure the machine's load cannot move.

    .venv/bin/python bench/instructions.py [--python PY] [--reconciler BIN] [--spec FILE]

On a shared 2-core machine wall and CPU times of a 100 ms command move by half with the load;
the number of instructions executed (valgrind's callgrind, user space) does not: the same
command counts the same within 0.1%. It is what to compare before and after a start-up change.
Time is about proportional (this machine, idle: roughly 4-5 G instructions per second for
CPython start-up code), so the figures are a ratio, not milliseconds.

Measures: the bare interpreter (`-I -S -c pass`, the floor), the interpreter with site,
`reconciler --version`, `reconciler validate SPEC` not cached (`RECONCILER_NO_CACHE=1`: an
edited spec, the case `validate` is for) and `reconciler plan SPEC --host-check=off` with the
spec in the cache, as a timer's plan reads it (the reconciler process alone: its probe commands
are what this machine has, the floor's part). Needs valgrind
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

# Store the spec's validated data in the cache (what an apply does before it plans).
PRIME = """
import sys
from reconciler.spec import validation_cache
from reconciler.spec.checking import check_spec
validation_cache.allow_writes()
check_spec(sys.argv[1])
"""

# N four-field classes made dataclasses with the given options: what building one costs.
DATACLASSES = """
import sys
from dataclasses import dataclass
options = eval(sys.argv[2])
for i in range(int(sys.argv[1])):
    ns = {"__annotations__": {"a": "int", "b": "str", "c": "tuple[str, ...]", "d": "int"}, "d": 0}
    dataclass(**options)(type(f"C{i}", (), ns))
"""

FROZEN = DATACLASSES.replace(
    "from dataclasses import dataclass", "from reconciler.frozen import frozen"
)
FROZEN = FROZEN.replace("options = eval(sys.argv[2])", "").replace("dataclass(**options)", "frozen")


def instructions(argv: list[str], env: dict[str, str], children: bool = True) -> int:
    """Instructions executed by `argv` and (with `children`) its children (callgrind's total)."""
    done = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            f"--trace-children={'yes' if children else 'no'}",
            "--callgrind-out-file=/dev/null",
            *argv,
        ],
        env=env,
        cwd="/",  # never the checkout: `python -c` would import the package from it
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
    parser.add_argument("--quick", action="store_true", help="skip the dataclass costs")
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
        # The spec in the cache, as `apply` (the timer) leaves it, by the reconciler's own python.
        python = Path(args.reconciler).read_text(errors="replace").splitlines()[0][2:].strip()
        spec = str(args.spec.resolve())
        subprocess.run(
            [python, "-c", PRIME, spec], env=env, cwd="/", check=True, capture_output=True
        )
        argv = [args.reconciler, "plan", spec, "--host-check=off"]
        count = instructions(argv, env, children=False)
        label = "reconciler plan (cached, no probes)"
        print(f"{label:36} {count / 1e6:8.1f} M instructions  {count / floor:5.1f}x floor")
        if args.quick:
            return
        # What one dataclass costs to build: reconciler/frozen.py builds most of ours.
        none = instructions([args.python, "-c", DATACLASSES, "0", "{}"], env)
        for options in ("{'frozen': True}", "{}", "{'repr': False, 'eq': False}"):
            count = instructions([args.python, "-c", DATACLASSES, "150", options], env)
            print(f"one dataclass({options}): {(count - none) / 150 / 1e6:.2f} M instructions")
        count = instructions([python, "-c", FROZEN, "150"], env)
        print(f"one @frozen: {(count - none) / 150 / 1e6:.2f} M instructions")


if __name__ == "__main__":
    main()

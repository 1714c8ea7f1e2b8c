"""`sh` (as the runner used it until issue 11) against system/process.py (subprocess): cost per
command and whether all output is captured.

    .venv/bin/python bench/runner_bench.py [--runs 200]

Prints the median wall time of `/bin/true` through each, and how many of N runs of a command
that writes 1 MiB to stdout and 1 MiB to stderr came back complete.
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time

from reconciler.system.process import run_process

BIG = (
    "import sys\n"
    "for i in range(1024):\n"
    "    sys.stdout.write('o' * 1023 + '\\n'); sys.stderr.write('e' * 1023 + '\\n')\n"
)


def via_sh(argv: tuple[str, ...], timeout_s: float = 30.0) -> tuple[int, bytes, bytes]:
    """The runner's former way: sh in the background, a timer kills it at the deadline."""
    import sh

    proc = sh.Command(argv[0])(
        *argv[1:],
        _bg=True,
        _return_cmd=True,
        _ok_code=list(range(-64, 256)),
        _env=dict(os.environ),
        _tty_out=False,
        _decode_errors="replace",
    )
    timer = threading.Timer(timeout_s, proc.kill)
    timer.daemon = True
    timer.start()
    try:
        proc.wait()
    finally:
        timer.cancel()
    return int(proc.exit_code), proc.stdout, proc.stderr


def via_process(argv: tuple[str, ...], timeout_s: float = 30.0) -> tuple[int, bytes, bytes]:
    done = run_process(argv, env=dict(os.environ), stdin=None, timeout_s=timeout_s)
    return done.exit_code, done.stdout, done.stderr


def median_ms(run: object, argv: tuple[str, ...], runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        run(argv)  # type: ignore[operator]
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def complete(run: object, runs: int) -> int:
    import sys

    argv = (sys.executable, "-S", "-c", BIG)
    ok = 0
    for _ in range(runs):
        _, out, err = run(argv)  # type: ignore[operator]
        ok += len(out) == len(err) == 1024 * 1024
    return ok


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--big-runs", type=int, default=50)
    args = parser.parse_args()
    import sh  # noqa: F401  (import cost is not per command)

    for name, run in (("sh", via_sh), ("subprocess", via_process)):
        ms = median_ms(run, ("/bin/true",), args.runs)
        ok = complete(run, args.big_runs)
        print(
            f"{name:>10}: /bin/true median {ms:.2f} ms over {args.runs} runs; "
            f"1 MiB+1 MiB output complete in {ok}/{args.big_runs} runs"
        )


if __name__ == "__main__":
    main()

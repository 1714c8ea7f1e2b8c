"""Time `reconciler doctor` on a healthy fake host with 2 profiles and count its subprocesses.

    .venv/bin/python bench/doctor_bench.py [--runs N]

Converges a fake host (tests/fakehost) for the two-profile spec of tests/review_cli.py, then runs
`doctor` in-process through the CLI N times: wall time per run, and the subprocesses it started
(from the fake tools' call log, which logs every call, sudo/runuser wrappers included).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

import engine_on_fakehost as drive  # noqa: E402
from fakehost import FakeHost  # noqa: E402
from review_cli import SPEC, FakeHostCli  # noqa: E402

from reconciler.spec import load_spec  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    with tempfile.TemporaryDirectory() as tmp:
        fake = FakeHost(Path(tmp) / "host")
        try:
            fake.set_node("v22.12.0")
            fake.set_gateway("2026.1.24-3")
            fake.set_tailscale(https=True)
            fake.set_linger("user", True)
            spec_path = Path(tmp) / "vm102.yaml"
            spec_path.write_text(SPEC)
            cli = FakeHostCli(fake)
            drive.apply(fake, load_spec(spec_path), cli.host)
            times: list[float] = []
            counts: list[Counter[str]] = []
            for _ in range(runs):
                fake.clear_calls()
                started = time.perf_counter()
                result = cli("doctor", str(spec_path))
                times.append(time.perf_counter() - started)
                assert result.exit_code == 0, result.output
                counts.append(Counter(c["tool"] for c in fake.calls()))
        finally:
            fake.close()
    print(f"doctor, healthy fake host, 2 profiles, {runs} runs")
    print(f"  wall time: median {statistics.median(times):.2f} s, min {min(times):.2f} s")
    total = sum(counts[-1].values())
    print(f"  subprocesses per run: {total} ({dict(sorted(counts[-1].items()))})")


if __name__ == "__main__":
    main()

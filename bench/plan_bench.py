"""Time `plan` on a converged fake host and count the subprocesses it starts.

    .venv/bin/python bench/plan_bench.py [--runs N] [--profiles N] [--versioned]

Converges a fake host (tests/fakehost) for a spec with N profiles, then measures:
- in-process: probe + plan through the real engine (runner over `sh`, fake executables);
- whole command: a fresh `python -m reconciler plan` process (imports included) wired to the
  same fake host, the way the timer would start it;
and counts subprocesses per plan from the fake tools' call log (each fake tool logs every call,
so this counts what really ran, not what we think we ran). Last, loading the seed spec in a fresh
python: validated (RECONCILER_NO_CACHE=1) and from the spec cache (what a timer run does).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

import engine_on_fakehost as drive  # noqa: E402
from fakehost import FakeHost  # noqa: E402

from reconciler.spec.model import (  # noqa: E402
    GatewayRuntime,
    Host,
    Node,
    Profile,
    Runtime,
    ServeEntry,
    Spec,
    Tailscale,
)


def make_spec(profiles: int, versioned: bool = False) -> Spec:
    """The bench's spec; `versioned`: runtime.gateway.install versioned (the fake npm's
    2026.1.24-3 needs strip-ansi beside it, as the real one does)."""
    names = ["personal", "ops"] + [f"p{i}" for i in range(2, profiles)]
    chosen = tuple(Profile(n, 18789 + 20 * i) for i, n in enumerate(names[:profiles]))
    gateway = GatewayRuntime("clawdbot", version="2026.1.24-3")
    if versioned:
        gateway = GatewayRuntime(
            "clawdbot",
            version="2026.1.24-3",
            install="versioned",
            extra=(("strip-ansi", "^7.1.0"),),
            overrides=(("libsignal", "npm:libsignal@6.0.0"),),
        )
    return Spec(
        host=Host("vm102", "user"),
        runtime=Runtime(Node(range=">=22.12"), gateway),
        profiles=tuple(sorted(chosen, key=lambda p: p.name)),
        linger=True,
        tailscale=Tailscale(operator="user", serve=(ServeEntry(443, profile="personal"),)),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--profiles", type=int, default=2)
    parser.add_argument("--versioned", action="store_true", help="install: versioned")
    args = parser.parse_args()
    spec = make_spec(args.profiles, args.versioned)
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp, FakeHost(Path(tmp)) as fake:
        fake.set_node("v22.12.0")
        fake.set_gateway("2026.1.24-3")
        host = drive.host_context(fake, "user")
        drive.apply(fake, spec, host)
        leftover = drive.plan(fake, spec, host)
        if leftover.actions:
            sys.exit(f"the fake host did not converge: {[a.address for a in leftover.actions]}")

        times = []
        per_plan = []
        for _ in range(args.runs):
            fake.clear_calls()
            start = time.perf_counter()
            drive.plan(fake, spec, host)
            times.append(time.perf_counter() - start)
            # Wrapper lines (sudo, runuser) are logged besides the command they ran.
            per_plan.append(len([c for c in fake.calls() if c["tool"] not in ("sudo", "runuser")]))
        tools = sorted({" ".join(c["argv"][:3]) for c in fake.calls()})

        cli_times = []
        cli_cpu = []
        script = Path(tmp) / "cli_plan.py"
        script.write_text(_cli_script(spec, fake, args.profiles, args.versioned))
        for _ in range(max(5, args.runs // 2)):
            start, cpu = time.perf_counter(), _children_cpu()
            done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True)
            cli_times.append(time.perf_counter() - start)
            cli_cpu.append(_children_cpu() - cpu)
            if done.returncode != 0:
                sys.exit(f"cli plan failed: {done.stdout}{done.stderr}")

        load_times = _spec_load_times(Path(tmp), max(5, args.runs // 2))

    print(f"profiles: {args.profiles}, runs: {args.runs}, versioned: {args.versioned}")
    print(f"subprocesses per plan: {sorted(set(per_plan))}  ({', '.join(tools)})")
    print(_stats("plan, in-process (probe + plan)", times))
    print(_stats("plan, whole command (fresh python)", cli_times))
    print(_stats("plan, whole command, CPU time (user+sys, all processes)", cli_cpu))
    for label, samples in load_times.items():
        print(_stats(f"load specs/vm102.yaml, fresh python, {label}", samples))


def _spec_load_times(tmp: Path, runs: int) -> dict[str, list[float]]:
    """A fresh python that loads the seed spec: validated (no cache) vs from the spec cache."""
    script = f"from reconciler.spec import load_spec; load_spec({str(REPO / 'specs/vm102.yaml')!r})"
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp / "cache")}
    env.pop("RECONCILER_NO_CACHE", None)
    subprocess.run([sys.executable, "-c", script], env=env, check=True)  # fills the cache
    times: dict[str, list[float]] = {}
    for _ in range(runs):
        for label, extra in (("validated", {"RECONCILER_NO_CACHE": "1"}), ("cached", {})):
            start, cpu = time.perf_counter(), _children_cpu()
            subprocess.run([sys.executable, "-c", script], env={**env, **extra}, check=True)
            times.setdefault(label, []).append(time.perf_counter() - start)
            times.setdefault(f"{label}, CPU time", []).append(_children_cpu() - cpu)
    return times


def _cli_script(spec: Spec, fake: FakeHost, profiles: int, versioned: bool) -> str:
    return textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(REPO / "tests")!r})
        sys.path.insert(0, {str(REPO / "bench")!r})
        from pathlib import Path
        import engine_on_fakehost as drive
        from fakehost import FakeHost
        from plan_bench import make_spec
        from reconciler import cli
        from reconciler.app.context import AppContext

        fake = FakeHost.attach(Path({str(fake.dir)!r}))
        spec = make_spec({profiles}, {versioned})
        host = drive.host_context(fake, "user")
        app = AppContext(
            spec_loader=lambda path: spec,
            discover_host=lambda s: host,
            make_runner=lambda h, mutating: drive.read_only_runner(fake, h),
        )
        args = ["plan", "spec.yaml", "--host-check=off", "--detailed-exitcode"]
        try:
            cli.cli.main(args, prog_name="reconciler", obj=app)
        except SystemExit as exc:
            sys.exit(0 if exc.code == 0 else 1)
        """
    )


def _children_cpu() -> float:
    """CPU seconds used by finished children (and theirs): unlike wall time, not inflated by
    other work on a shared machine."""
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def _stats(label: str, samples: list[float]) -> str:
    ms = sorted(s * 1000 for s in samples)
    return (
        f"{label}: median {statistics.median(ms):.0f} ms, "
        f"min {ms[0]:.0f} ms, max {ms[-1]:.0f} ms (n={len(ms)})"
    )


if __name__ == "__main__":
    main()

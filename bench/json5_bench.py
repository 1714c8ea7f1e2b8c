"""Gateway configs of 1, 4 and 20 MB: parse time, and a whole plan on a converged fake host.

    .venv/bin/python bench/json5_bench.py [--sizes 1 4 20] [--runs 3]

For each size: `parse_config` of plain JSON (what the gateway writes: the stdlib's C parser),
of the same document written as JSON5 (comments, unquoted keys, trailing commas: pyjson5), and
the plan of a converged 2-profile fake host whose `personal` config is the JSON5 one. The old
parser (`json5`, pure Python) is timed on the 1 MB JSON5 document only (it takes ~8 s per MB).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "bench"))

import engine_on_fakehost as drive  # noqa: E402
from fakehost import FakeHost  # noqa: E402
from plan_bench import make_spec  # noqa: E402

from reconciler.gateway.paths import profile_paths  # noqa: E402
from reconciler.kinds.gateway_config import _parse_once, parse_config  # noqa: E402


def documents(megabytes: int, owned: dict[str, object]) -> tuple[str, str]:
    """(plain JSON, JSON5) of about `megabytes` MB: the owned keys plus many agent entries."""
    agent = {"id": "a", "name": "agent", "model": "m" * 40, "tools": ["x", "y"], "n": 1.5}
    count = megabytes * 1024 * 1024 // 120
    doc = {**owned, "agents": {"list": [dict(agent, id=f"a{i}") for i in range(count)]}}
    plain = json.dumps(doc, indent=2)
    lines = ["// written by hand", "{"]
    for key, value in doc.items():
        if key != "agents":
            lines.append(f"  {key}: {json.dumps(value)},")
    lines.append("  agents: { list: [")
    for entry in doc["agents"]["list"]:  # type: ignore[index]
        body = ", ".join(f"{k}: {json.dumps(v)}" for k, v in entry.items())
        lines.append(f"    {{ {body}, }}, // {entry['id']}")
    lines += ["  ], },", "}"]
    return plain, "\n".join(lines) + "\n"


def median_s(fn: object, runs: int) -> float:
    times = []
    for _ in range(runs):
        _parse_once.cache_clear()  # every run parses: the cache only serves kinds of one plan
        started = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 4, 20])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    spec = make_spec(2)
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp, FakeHost(Path(tmp)) as fake:
        fake.set_node("v22.12.0")
        fake.set_gateway("2026.1.24-3")
        host = drive.host_context(fake, "user")
        drive.apply(fake, spec, host)
        if drive.plan(fake, spec, host).actions:
            sys.exit("the fake host did not converge")
        config = profile_paths(spec, spec.profiles[0], host).config
        owned = json.loads(config.read_text())
        for mb in args.sizes:
            plain, five = documents(mb, owned)
            t_plain = median_s(lambda: parse_config(plain, "c"), args.runs)  # noqa: B023
            t_five = median_s(lambda: parse_config(five, "c"), args.runs)  # noqa: B023
            config.write_text(five)
            t_plan = median_s(lambda: drive.plan(fake, spec, host), args.runs)
            print(
                f"{len(five) / 2**20:5.1f} MB: parse plain JSON {t_plain * 1000:7.1f} ms, "
                f"JSON5 {t_five * 1000:7.1f} ms; converged plan with it {t_plan * 1000:7.1f} ms"
            )
        if 1 in args.sizes:
            import json5

            _, five = documents(1, owned)
            started = time.perf_counter()
            json5.loads(five, strict=False)
            print(
                f"  1 MB JSON5 with the json5 package (before): {time.perf_counter() - started:.1f} s"
            )


if __name__ == "__main__":
    main()

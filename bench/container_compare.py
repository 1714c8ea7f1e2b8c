"""Converged plan vs its floor vs pyinfra vs Ansible, side by side on one real-systemd container.

    sudo .venv/bin/python bench/container_compare.py [--runs 5] [--profiles 2] [--base DIR]
                                                     [--wheels DIR]

Not a test: a measurement (issue 12, "Speed"). One systemd-nspawn container from the e2e
harness (tests/e2e: cached bookworm rootfs, real systemd + logind, the stand-in gateway, the fake
`tailscale` from tests/fakehost on PATH) is converged with `reconciler apply` for a seed-like
spec with two profiles (tests/e2e/specs/two-gateways.yaml: linger, operator, two gateways,
both served; `--profiles N`: N profiles, the same two served). The user then runs the timer's
`apply` once (nothing to do; it keeps the validated spec in the user's cache, as on any host the
timer runs on). Then, as the spec's user (the way the timer runs), medians of --runs of:

- plan:    `reconciler plan SPEC --detailed-exitcode` (must exit 0: converged);
- plan (uncached): the same with RECONCILER_NO_CACHE=1, i.e. the spec validated on every run
           (an edited spec, or a user who never ran apply);
- floor:   `python3 -I -S -c pass`, then every command the plan's probes run, run bare one
           after the other (the list is read from the reconciler's own runner log);
- pyinfra: `pyinfra @local deploy.py --dry` of an equivalent deploy: the same directories,
           files (content + mode), user services (running + enabled), linger, and the tailscale
           facts compared in the deploy (operator, serve targets), so it has the same change
           detection;
- ansible: `ansible-playbook --check` of an equivalent playbook (connection local,
           gather_facts off: the plan gathers no facts beyond its probes either).

The tools are timed inside the container by one stdlib script (runs interleaved, one warm-up
each), so nsenter/runuser overhead is in none of the figures. pyinfra and ansible-core come
from PyPI as wheels built on this machine (`pip wheel`), installed offline into /opt/bench in
the container (it has no network: docs/host-facts.md section 4). Before timing, each tool must report
no change on the converged host, and after timing one drift (a config file's mode) must be
reported by all three, so none of them is measured doing nothing. The last lines print the
ratios issue 23 asks for: plan / floor, pyinfra / plan and ansible / plan.

--base DIR adds "plan (base)": the same command with another checkout of the reconciler (e.g.
`git archive <commit> | tar -x -C DIR`) bound at /src-base, for before/after in one run.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import re
import shlex
import subprocess
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.e2e import harness, images  # noqa: E402

SPEC_SOURCE = REPO / "tests" / "e2e" / "specs" / "two-gateways.yaml"
BASE_PROFILES = ("ops", "personal")  # the profiles of SPEC_SOURCE
SPEC = "/etc/reconciler/host.yaml"
USER = images.USER
HOME = f"/home/{USER}"
BENCH = "/opt/bench"  # venv with pyinfra + ansible-core, and the generated deploy/playbook
WHEELS_IN = "/opt/bench-wheels"
BASE_IN = "/src-base"
DRIFT_MODE = 0o644  # what the drift check sets a config file to (the spec wants 0600)
TOOLS = ("pyinfra", "ansible-core")
CACHE_OFF = "RECONCILER_NO_CACHE"  # reconciler/spec/validation_cache.py DISABLE_ENV


def build_wheels(dest: Path) -> Path:
    """pyinfra + ansible-core wheels (and their dependencies) built on this machine, cached."""
    marker = dest / ".complete"
    if not marker.exists():
        dest.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "-q", "-w", str(dest), *TOOLS], check=True
        )
        marker.write_text("")
    return dest


def probe_commands(c: harness.Container) -> list[list[str]]:
    """The argv of every command the plan's probes ran, from the reconciler's own runner."""
    script = textwrap.dedent(
        f"""
        import json
        from reconciler.app.plan_pass import probe_and_plan
        from reconciler.core.host import HostContext
        from reconciler.kinds import all_kinds
        from reconciler.shell.runner import ReadOnlyRunner
        from reconciler.spec import load_spec

        spec = load_spec({SPEC!r})
        host = HostContext.discover(spec.host.user)
        runner = ReadOnlyRunner(host)
        probe_and_plan(spec, host, runner, all_kinds())
        print(json.dumps([list(r.argv) for r in runner.log if r.exit_code is not None]))
        """
    )
    out = c.run(["/opt/r/bin/python", "-c", script], user=USER).stdout
    commands: list[list[str]] = json.loads(out)
    return commands


def profile_names(count: int) -> list[str]:
    """SPEC_SOURCE's two profiles, then p03, p04, ... up to `count`."""
    return [*BASE_PROFILES, *(f"p{i:02d}" for i in range(3, count + 1))][:count]


def spec_text(count: int) -> str:
    """SPEC_SOURCE with `count` profiles (ports 20 apart; the two served ones keep theirs)."""
    text = SPEC_SOURCE.read_text()
    head, _, _ = text.partition("\nprofiles:\n")
    ports = {"ops": 18809, "personal": 18789}
    lines = ["", "profiles:"]
    for i, name in enumerate(profile_names(count)):
        lines += [f"  {name}:", f"    port: {ports.get(name, 19000 + 20 * i)}"]
    return head + "\n".join(lines) + "\n"


def managed_paths(
    c: harness.Container, profiles: Sequence[str] = BASE_PROFILES
) -> dict[str, list[tuple[str, int]]]:
    """What apply made for the profiles: directories, files with content, token env files."""
    listing = c.run(
        [
            "find",
            f"{HOME}/.config/systemd/user",
            *[f"{HOME}/.clawdbot-{p}" for p in profiles],
            *[f"{HOME}/clawd-{p}" for p in profiles],
            "-maxdepth",
            "1",
            "(",
            "-type",
            "d",
            "-o",
            "-type",
            "f",
            ")",
            "-printf",
            "%y %m %p\n",
        ],
        user=USER,
    ).stdout
    found: dict[str, list[tuple[str, int]]] = {"dirs": [], "files": [], "secret": [], "units": []}
    for line in sorted(listing.splitlines()):
        kind, mode, path = line.split(" ", 2)
        if kind == "d":
            if "/.config/" not in path:  # the unit directory and its .wants are systemd's
                found["dirs"].append((path, int(mode, 8)))
        elif path.endswith("/gateway.env"):
            found["secret"].append((path, int(mode, 8)))  # content is the user's token: mode only
        elif path.endswith(".json") or path.endswith(".service"):
            found["files"].append((path, int(mode, 8)))
            if path.endswith(".service") and "clawdbot-gateway-" in path:
                found["units"].append((path.rsplit("/", 1)[1], 0))
    return found


def serve_targets(c: harness.Container) -> dict[str, str]:
    """HTTPS port -> `/` proxy target, as `tailscale serve status --json` shows it converged."""
    config = json.loads(c.run(["tailscale", "serve", "status", "--json"]).stdout or "{}")
    return {
        hostport.rsplit(":", 1)[1]: web["Handlers"]["/"]["Proxy"]
        for hostport, web in config.get("Web", {}).items()
    }


def pyinfra_deploy(paths: dict[str, list[tuple[str, int]]], serve: dict[str, str]) -> str:
    copies = [(f"{BENCH}/files{p}", p, f"{m:o}") for p, m in paths["files"]]
    return textwrap.dedent(
        f"""
        # Generated by bench/container_compare.py: the converged host of {SPEC_SOURCE.name}.
        import json

        from pyinfra import host
        from pyinfra.facts.server import Command
        from pyinfra.operations import files, server, systemd

        for path, mode in {[(p, f"{m:o}") for p, m in paths["dirs"]]!r}:
            files.directory(name=f"dir {{path}}", path=path, mode=mode, present=True)
        for src, dest, mode in {copies!r}:
            files.put(name=f"file {{dest}}", src=src, dest=dest, mode=mode)
        for path, mode in {[(p, f"{m:o}") for p, m in paths["secret"]]!r}:
            files.file(name=f"secret {{path}}", path=path, mode=mode, present=True)
        files.file(name="linger", path="/var/lib/systemd/linger/{USER}", present=True)
        for unit in {[u for u, _ in paths["units"]]!r}:
            systemd.service(
                name=f"unit {{unit}}", service=unit, running=True, enabled=True, user_mode=True
            )

        # Tailscale: the same three facts the plan reads, compared here.
        host.get_fact(Command, command="tailscale status --json")
        prefs = json.loads(host.get_fact(Command, command="tailscale debug prefs"))
        if prefs.get("OperatorUser") != "{USER}":
            server.shell(name="operator", commands=["tailscale set --operator={USER}"])
        serve = json.loads(host.get_fact(Command, command="tailscale serve status --json") or "{{}}")
        current = {{
            hp.rsplit(":", 1)[1]: web["Handlers"]["/"]["Proxy"]
            for hp, web in serve.get("Web", {{}}).items()
        }}
        for port, target in {serve!r}.items():
            if current.get(port) != target:
                server.shell(
                    name=f"serve {{port}}",
                    commands=[f"tailscale serve --bg --https={{port}} {{target}}"],
                )
        """
    )


def ansible_playbook(
    paths: dict[str, list[tuple[str, int]]],
    serve: dict[str, str],
    *,
    hosts: str = "localhost",
    files_root: str = f"{BENCH}/files",
) -> str:
    """The playbook; `hosts="all"` and a controller-side `files_root` run it over SSH
    (bench/remote_compare.py)."""
    connection = "\n          connection: local" if hosts == "localhost" else ""

    def items(pairs: list[tuple[str, int]]) -> str:
        return json.dumps([{"path": p, "mode": f"0{m:o}"} for p, m in pairs])

    files = json.dumps(
        [{"src": f"{files_root}{p}", "dest": p, "mode": f"0{m:o}"} for p, m in paths["files"]]
    )
    units = json.dumps([u for u, _ in paths["units"]])
    return textwrap.dedent(
        f"""
        # Generated by bench/container_compare.py: the converged host of {SPEC_SOURCE.name}.
        - hosts: {hosts}{connection}
          gather_facts: false
          vars:
            serve: {json.dumps(serve)}
          tasks:
            - name: state directories
              ansible.builtin.file: {{path: "{{{{ item.path }}}}", state: directory, mode: "{{{{ item.mode }}}}"}}
              loop: {items(paths["dirs"])}
            - name: files
              ansible.builtin.copy: {{src: "{{{{ item.src }}}}", dest: "{{{{ item.dest }}}}", mode: "{{{{ item.mode }}}}"}}
              loop: {files}
            - name: token env files (mode only; the content is the user's)
              ansible.builtin.file: {{path: "{{{{ item.path }}}}", state: file, mode: "{{{{ item.mode }}}}"}}
              loop: {items(paths["secret"])}
            - name: linger
              ansible.builtin.stat: {{path: /var/lib/systemd/linger/{USER}}}
              register: linger
            - name: linger is on
              ansible.builtin.assert: {{that: linger.stat.exists, quiet: true}}
            - name: gateway services
              ansible.builtin.systemd_service: {{name: "{{{{ item }}}}", state: started, enabled: true, scope: user}}
              loop: {units}
            - name: tailscale status
              ansible.builtin.command: tailscale status --json
              changed_when: false
              check_mode: false
            - name: tailscale prefs
              ansible.builtin.command: tailscale debug prefs
              register: prefs
              changed_when: false
              check_mode: false
            - name: operator
              ansible.builtin.command: tailscale set --operator={USER}
              when: (prefs.stdout | from_json).OperatorUser | default('') != '{USER}'
            - name: serve status
              ansible.builtin.command: tailscale serve status --json
              register: served
              changed_when: false
              check_mode: false
            - name: serve entries as they are (port -> target)
              ansible.builtin.set_fact:
                current: "{{{{ current | default({{}}) | combine({{(item.key | regex_replace('^.*:', '')): item.value.Handlers['/'].Proxy}}) }}}}"
              loop: "{{{{ ((served.stdout | from_json).Web | default({{}})) | dict2items }}}}"
            - name: serve entries
              ansible.builtin.command: "tailscale serve --bg --https={{{{ item.key }}}} {{{{ item.value }}}}"
              loop: "{{{{ serve | dict2items }}}}"
              when: (current | default({{}})).get(item.key) != item.value
        """
    )


TIMER = textwrap.dedent(
    """
    import json, resource, statistics, subprocess, sys, time
    cfg = json.load(open(sys.argv[1]))
    env = cfg["env"]
    wall = {name: [] for name in cfg["cases"]}
    cpu = {name: [] for name in cfg["cases"]}
    codes = {name: set() for name in cfg["cases"]}
    def used():
        r = resource.getrusage(resource.RUSAGE_CHILDREN)
        return r.ru_utime + r.ru_stime
    for i in range(cfg["runs"] + 1):  # the first round is a warm-up, not counted
        for name, commands in cfg["cases"].items():
            c0, t0 = used(), time.perf_counter()
            for argv in commands:
                r = subprocess.run(argv, env=env, cwd=env["HOME"], stdin=subprocess.DEVNULL,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                codes[name].add(r.returncode)
            if i:
                wall[name].append(time.perf_counter() - t0)
                cpu[name].append(used() - c0)
    print(json.dumps({n: {"median": statistics.median(s), "samples": s,
                          "cpu": statistics.median(cpu[n]), "codes": sorted(codes[n])}
                      for n, s in wall.items()}))
    """
)


def user_env(c: harness.Container) -> dict[str, str]:
    return {
        **c.user_env(USER),
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_LOCALHOST_WARNING": "false",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
    }


PLAN = ["plan", SPEC, "--detailed-exitcode", "--no-color"]


def cases(probes: list[list[str]], base: bool) -> dict[str, list[list[str]]]:
    chosen = {
        "plan": [["reconciler", *PLAN]],
        # An edited spec (new bytes) or a user who never applied: validated on every run.
        "plan (uncached)": [["env", f"{CACHE_OFF}=1", "reconciler", *PLAN]],
        "floor": [["python3", "-I", "-S", "-c", "pass"], *probes],
        "pyinfra": [[f"{BENCH}/bin/pyinfra", "@local", f"{BENCH}/deploy.py", "--dry"]],
        "ansible": [
            [
                f"{BENCH}/bin/ansible-playbook",
                "-i",
                "localhost,",
                "-e",
                f"ansible_python_interpreter={BENCH}/bin/python",
                "--check",
                f"{BENCH}/playbook.yml",
            ]
        ],
    }
    if base:
        chosen["plan (base)"] = [["reconciler-base", *PLAN]]
    return chosen


def run_once(c: harness.Container, argv: list[str]) -> subprocess.CompletedProcess[str]:
    return c.run(argv, user=USER, check=False, env=user_env(c), timeout=300)


def changed(name: str, r: subprocess.CompletedProcess[str]) -> bool | None:
    """Did the tool report a change? None when its output says something went wrong."""
    text = r.stdout + r.stderr
    if name.startswith("plan"):
        return {0: False, 2: True}.get(r.returncode)
    if name == "pyinfra":
        if r.returncode != 0 or "Detected changes" not in text:
            return None
        return re.search(r"\s\d+ \(@local\)", text) is not None  # the Change column
    if name == "ansible":
        if r.returncode != 0 or "failed=0" not in text:
            return None
        return "changed=0" not in text
    raise ValueError(name)


def check_detection(c: harness.Container, chosen: dict[str, list[list[str]]], want: bool) -> None:
    for name, commands in chosen.items():
        if name == "floor":
            continue
        r = run_once(c, commands[0])
        got = changed(name, r)
        if got is not want:
            raise SystemExit(
                f"{name}: expected {'a change' if want else 'no change'}, got {got} "
                f"(exit {r.returncode})\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
            )


def prepare(c: harness.Container, base: Path | None, profiles: int) -> None:
    c.run(
        [
            "sh",
            "-euc",
            f"python3 -m venv {BENCH} && {BENCH}/bin/pip install -q --no-index "
            f"--find-links {WHEELS_IN} {' '.join(TOOLS)}",
        ],
        timeout=600,
    )
    if base is not None:
        c.write_file(
            "/usr/local/bin/reconciler-base",
            f'#!/bin/sh\nPYTHONPATH={BASE_IN} exec {images.VENV}/bin/python -m reconciler "$@"\n',
            mode=0o755,
        )
    c.write_file(SPEC, spec_text(profiles), mode=0o644)
    r = c.run(["reconciler", "apply", SPEC, "--yes", "--no-color"], check=False, timeout=600)
    if r.returncode != 0:
        raise SystemExit(f"apply failed:\n{r.stdout}\n{r.stderr}")
    # The timer's apply, as the user, on the converged host: nothing to do, and (like every
    # apply) it keeps the validated spec in the user's cache, as on a host the timer runs on.
    r = c.run(
        ["reconciler", "apply", SPEC, "--yes", "--no-color"],
        user=USER,
        env=user_env(c),
        check=False,
        timeout=300,
    )
    if r.returncode != 0:
        raise SystemExit(f"apply as {USER} failed:\n{r.stdout}\n{r.stderr}")


def write_peers(c: harness.Container, profiles: int) -> dict[str, list[tuple[str, int]]]:
    paths = managed_paths(c, profile_names(profiles))
    for path, _ in paths["files"]:
        c.write_file(f"{BENCH}/files{path}", c.read_file(path), mode=0o644)
    serve = serve_targets(c)
    c.write_file(f"{BENCH}/deploy.py", pyinfra_deploy(paths, serve), mode=0o644)
    c.write_file(f"{BENCH}/playbook.yml", ansible_playbook(paths, serve), mode=0o644)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--profiles", type=int, default=2, help="gateway profiles in the spec (default 2)"
    )
    parser.add_argument("--base", type=Path, help="another reconciler checkout to time as well")
    parser.add_argument(
        "--src", type=Path, default=REPO, help="the reconciler checkout to converge and time"
    )
    parser.add_argument(
        "--wheels", type=Path, default=images.cache_dir() / "bench-wheels", help="wheel cache"
    )
    args = parser.parse_args()
    wheels = build_wheels(args.wheels)
    for tree in (args.src, args.base):  # /src is read-only inside: compile on this side
        if tree is not None:
            compileall.compile_dir(tree / "reconciler", quiet=1)
    binds = [(wheels, WHEELS_IN)] + ([(args.base.resolve(), BASE_IN)] if args.base else [])
    with harness.booted(binds_ro=binds, repo=args.src.resolve()) as c:
        prepare(c, args.base, args.profiles)
        paths = write_peers(c, args.profiles)
        probes = probe_commands(c)
        chosen = cases(probes, args.base is not None)
        check_detection(c, chosen, want=False)
        c.write_file("/opt/bench/timer.py", TIMER, mode=0o644)
        config = {"runs": args.runs, "env": user_env(c), "cases": chosen}
        c.write_file("/opt/bench/cases.json", json.dumps(config), mode=0o644)
        out = c.run(
            ["python3", "/opt/bench/timer.py", "/opt/bench/cases.json"], user=USER, timeout=1800
        )
        results: dict[str, Any] = json.loads(out.stdout)
        config_file = next(p for p, _ in paths["files"] if p.endswith(".json"))
        c.run(["chmod", f"{DRIFT_MODE:o}", config_file])
        check_detection(c, chosen, want=True)
    report(results, probes, args.runs, args.profiles)


def report(results: dict[str, Any], probes: list[list[str]], runs: int, profiles: int) -> None:
    print(
        f"converged {SPEC_SOURCE.name} with {profiles} profiles, medians of {runs}, as user {USER}:"
    )
    print(f"floor probes ({len(probes)} commands): " + "; ".join(shlex.join(p) for p in probes))
    floor = results["floor"]["median"]
    for name, res in results.items():
        ms = ", ".join(f"{s * 1000:.0f}" for s in res["samples"])
        cpu = res.get("cpu")
        cpu_text = f"cpu {cpu:6.3f} s" if cpu is not None else ""
        print(
            f"  {name:12} {res['median']:6.3f} s  {res['median'] / floor:5.2f}x floor  "
            f"{cpu_text}  [{ms}] ms  exit {res['codes']}"
        )
    plan = results["plan"]["median"]
    print(
        f"ratios: plan / floor {plan / floor:.2f} (issue 23: <= 1.5), "
        f"uncached plan / floor {results['plan (uncached)']['median'] / floor:.2f}, "
        f"pyinfra / plan {results['pyinfra']['median'] / plan:.1f} (>= 3), "
        f"ansible / plan {results['ansible']['median'] / plan:.1f} (>= 20)"
    )
    with open("/proc/loadavg") as fh:
        print(
            f"load average at the end: {fh.read().split()[:3]} (this machine: {os.cpu_count()} cores)"
        )


if __name__ == "__main__":
    main()

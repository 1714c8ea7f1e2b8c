"""Remote plan over SSH vs `ansible-playbook --check` over SSH, for one host and for a fleet.

    sudo .venv/bin/python bench/remote_compare.py [--hosts 4] [--runs 5]

Not a test: a measurement (issue 16, "Measure and report"). --hosts real-systemd containers
(tests/e2e harness, cached rootfs, stand-in gateway, fake tailscale) join a private network of
namespaces made here (tests/e2e/network.py: nothing else is reachable), each with sshd. Every host
is converged with `reconciler apply SPEC... --yes` from the admin side, then, from the admin
namespace, medians of --runs (after one warm-up each) of:

- reconciler, 1 host:  `reconciler plan SPEC --detailed-exitcode` (must exit 0: converged);
- reconciler, N hosts: `reconciler plan SPEC... --detailed-exitcode` (the fleet, in parallel);
- ansible, 1 host:     `ansible-playbook --check --limit HOST` of the playbook that
                       bench/container_compare.py generates (same files, modes, user services,
                       linger, tailscale facts), over SSH with pipelining and ControlPersist;
- ansible, N hosts:    the same for every host (forks = N);
- local plan:          the same plan run on the first host itself (the image's reconciler), as
                       the same account the remote plan logs in as (the gateway user), and as
                       root (the figure earlier versions of this script compared with);
- SSH round trip:      `ssh HOST true` on an open (multiplexed) connection;

and prints the issue-20 budgets side by side: remote plan <= local plan + 2 round trips, a
fleet of N <= 1.5x one host, >= 10x faster than ansible. With the wall times it reports the
CPU each costs: the admin side's (the reconciler and its ssh, from getrusage) and each target's
(its container's cgroup `cpu.stat`), per run, and the load average before and after, because on
a machine with fewer cores than hosts the fleet's wall time is bounded below by its CPU divided
by the cores.

Both log in as the spec's user with the same key and known_hosts. Before timing, both must say
"no change" on every host. It also counts the SSH sessions one converged plan opens on a host
(sshd logs each at LogLevel VERBOSE). ansible-core comes from PyPI into a venv of its own.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from container_compare import ansible_playbook, managed_paths, serve_targets  # noqa: E402

from tests.e2e import harness, images  # noqa: E402
from tests.e2e.network import PrivateNetwork  # noqa: E402

USER = images.USER
SPEC_SOURCE = REPO / "tests" / "e2e" / "specs" / "two-gateways.yaml"
ANSIBLE_VENV = images.cache_dir() / "bench-ansible"


def ansible() -> Path:
    """ansible-core in a venv of its own (from PyPI), built once per machine."""
    binary = ANSIBLE_VENV / "bin" / "ansible-playbook"
    if not binary.exists():
        subprocess.run([sys.executable, "-m", "venv", str(ANSIBLE_VENV)], check=True)
        pip = [str(ANSIBLE_VENV / "bin" / "pip"), "install", "-q", "ansible-core"]
        subprocess.run(pip, check=True)
    return binary


def boot_host(net: PrivateNetwork, name: str, pub: str) -> tuple[harness.Container, str]:
    namespace, address = net.add_host()
    c = harness.Container(network_namespace=namespace, hostname=name)
    c.prepare()
    c.boot()
    for home, owner in (("/root", "root"), (f"/home/{USER}", USER)):
        c.run(["install", "-d", "-m", "700", "-o", owner, "-g", owner, f"{home}/.ssh"])
        c.write_file(f"{home}/.ssh/authorized_keys", pub, mode=0o600)
        c.run(["chown", f"{owner}:{owner}", f"{home}/.ssh/authorized_keys"])
    c.run(["sh", "-c", "echo 'LogLevel VERBOSE' > /etc/ssh/sshd_config.d/bench.conf"])
    c.run(["systemctl", "start", "ssh"])
    return c, address


def write_spec(folder: Path, name: str, address: str) -> Path:
    text = SPEC_SOURCE.read_text().replace("name: e2e", f"name: {name}")
    ssh = f'  user: user\n  ssh:\n    address: "{address}"\n    user: {USER}\n'
    path = folder / f"{name}.yaml"
    path.write_text(text.replace("  user: user\n", ssh, 1))
    return path


def cpu_seconds(c: harness.Container) -> float:
    """CPU time the container has used so far (its cgroup2 `cpu.stat`)."""
    for cg in c.cgroups:
        stat = cg / "cpu.stat"
        if stat.exists():
            fields = dict(line.split() for line in stat.read_text().splitlines())
            return int(fields["usage_usec"]) / 1e6
    return float("nan")


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# name -> (admin CPU per run, [each target's CPU per run]), filled by timed()
CPU: dict[str, tuple[float, list[float]]] = {}


def timed(
    name: str,
    argv: list[str],
    runs: int,
    env: dict[str, str] | None = None,
    targets: tuple[harness.Container, ...] = (),
) -> list[float]:
    """Wall seconds of `runs` runs (after one warm-up); every run must exit 0 (converged). The
    CPU the runs cost here and on `targets` goes to CPU[name]."""
    samples = []
    for i in range(runs + 1):
        if i == 1:
            here, there = children_cpu(), [cpu_seconds(c) for c in targets]
        start = time.perf_counter()
        r = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=REPO)
        elapsed = time.perf_counter() - start
        if r.returncode != 0:
            raise SystemExit(
                f"{' '.join(argv[-8:])}: exit {r.returncode}\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}"
            )
        if i:
            samples.append(elapsed)
    CPU[name] = (
        (children_cpu() - here) / runs,
        [(cpu_seconds(c) - t) / runs for c, t in zip(targets, there, strict=True)],
    )
    return samples


def sessions(c: harness.Container) -> int:
    """SSH sessions sshd has started on this host so far."""
    # The per-connection sshd processes sit in logind session scopes, not in ssh.service.
    out = c.run(["sh", "-c", "journalctl -t sshd --no-pager | grep -c 'Starting session' || true"])
    return int(out.stdout.strip() or 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", type=int, default=4)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    playbook_binary = ansible()
    net = PrivateNetwork().create()
    containers: list[harness.Container] = []
    work = Path(tempfile.mkdtemp(prefix="reconciler-remote-bench-"))
    try:
        key = work / "key"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
        pub = (work / "key.pub").read_text()
        names = [f"vm{201 + i}" for i in range(args.hosts)]
        hosts = []
        for name in names:
            c, address = boot_host(net, name, pub)
            containers.append(c)
            hosts.append((name, c, address))
        known = "".join(
            f"{a} {' '.join(c.read_file('/etc/ssh/ssh_host_ed25519_key.pub').split()[:2])}\n"
            for _, c, a in hosts
        )
        (work / "known_hosts").write_text(known)
        config = work / "ssh_config"
        config.write_text(
            f"Host *\n  IdentityFile {key}\n  IdentitiesOnly yes\n"
            f"  UserKnownHostsFile {work}/known_hosts\n  GlobalKnownHostsFile /dev/null\n"
        )
        specs = [str(write_spec(work, name, a)) for name, _, a in hosts]
        ours = [sys.executable, "-m", "reconciler"]
        # Converge as root (linger and the operator need it), then measure as the user.
        root_specs = []
        for spec in specs:
            root = Path(spec).with_suffix(".root.yaml")
            root.write_text(
                Path(spec).read_text().replace(f"    user: {USER}\n", "    user: root\n")
            )
            root_specs.append(str(root))
        converge = net.admin_argv(
            [*ours, "apply", *root_specs, "--yes", "--ssh-config", str(config)]
        )
        r = subprocess.run(converge, capture_output=True, text=True, cwd=REPO)
        if r.returncode != 0:
            raise SystemExit(f"converging failed:\n{r.stdout[-3000:]}\n{r.stderr[-2000:]}")

        # The playbook of bench/container_compare.py, over SSH: files come from this side.
        first = hosts[0][1]
        paths = managed_paths(first)
        files_root = work / "files"
        for path, _ in paths["files"]:
            local = files_root / path.lstrip("/")
            local.parent.mkdir(parents=True, exist_ok=True)
            local.write_text(first.read_file(path, user=USER))
        book = ansible_playbook(
            paths, serve_targets(first), hosts="all", files_root=str(files_root)
        )
        (work / "playbook.yml").write_text(book)
        (work / "inventory.ini").write_text(
            "[gateways]\n"
            + "".join(f"{n} ansible_host={a}\n" for n, _, a in hosts)
            + f"[gateways:vars]\nansible_user={USER}\nansible_python_interpreter=/usr/bin/python3\n"
        )
        (work / "ansible.cfg").write_text(
            "[defaults]\nhost_key_checking = True\nforks = 32\n[ssh_connection]\npipelining = True\n"
            f"ssh_args = -F {config} -o ControlMaster=auto -o ControlPersist=60s\n"
        )
        env = {**os.environ, "ANSIBLE_CONFIG": str(work / "ansible.cfg")}
        play = [
            str(playbook_binary),
            "-i",
            str(work / "inventory.ini"),
            "--check",
            str(work / "playbook.yml"),
        ]

        check = subprocess.run(net.admin_argv(play), capture_output=True, text=True, env=env)
        if (
            check.returncode != 0
            or " changed=0 " not in check.stdout
            or "changed=1" in check.stdout
        ):
            raise SystemExit(f"ansible does not see a converged fleet:\n{check.stdout[-3000:]}")
        plan_1 = net.admin_argv(
            [*ours, "plan", specs[0], "--detailed-exitcode", "--ssh-config", str(config)]
        )
        plan_n = net.admin_argv(
            [*ours, "plan", *specs, "--detailed-exitcode", "--ssh-config", str(config)]
        )

        # The same plan run on the host itself (the image's reconciler), and one SSH round trip
        # on an open connection: the budget is local plan + 2 round trips. Locally as the
        # account the remote plan logs in as (the user), and as root.
        load_before = os.getloadavg()
        local_plans = {}
        for account, text in (
            (USER, Path(specs[0]).read_text()),
            ("root", Path(root_specs[0]).read_text()),
        ):
            local_spec = f"/tmp/bench-spec-{account}.yaml"
            first.write_file(local_spec, text, mode=0o644)
            local_plan = ["reconciler", "plan", local_spec, "--detailed-exitcode"]
            samples = []
            for i in range(args.runs + 1):
                start = time.perf_counter()
                done = first.run(
                    local_plan, user=None if account == "root" else account, check=False
                )
                if done.returncode != 0:
                    raise SystemExit(f"local plan: exit {done.returncode}\n{done.stdout[-2000:]}")
                if i:
                    samples.append(time.perf_counter() - start)
            # No CPU figure: Container.run enters the namespaces, not the container's cgroup.
            local_plans[f"local plan on the host ({account})"] = samples
        mux = [
            "ssh",
            "-F",
            str(config),
            "-o",
            f"ControlPath={work}/mux-%C",
            "-o",
            "ControlMaster=auto",
            "-o",
            "ControlPersist=60",
            f"{USER}@{hosts[0][2]}",
            "true",
        ]
        results = {
            **local_plans,
            "SSH round trip (open connection)": timed("rtt", net.admin_argv(mux), args.runs),
            "reconciler, 1 host": timed("one", plan_1, args.runs, targets=(first,)),
            f"reconciler, {args.hosts} hosts": timed(
                "fleet", plan_n, args.runs, targets=tuple(containers)
            ),
            "ansible --check, 1 host": timed(
                "ansible one",
                net.admin_argv([*play, "--limit", names[0]]),
                args.runs,
                env,
                (first,),
            ),
            f"ansible --check, {args.hosts} hosts": timed(
                "ansible fleet", net.admin_argv(play), args.runs, env, tuple(containers)
            ),
        }
        load_after = os.getloadavg()
        # Counted on a warm target (the timed runs shipped the agent for this login already).
        before = sessions(first)
        subprocess.run(plan_1, capture_output=True, cwd=REPO, check=True)
        per_plan = sessions(first) - before
        cpu_of = {
            "reconciler, 1 host": "one",
            f"reconciler, {args.hosts} hosts": "fleet",
            "ansible --check, 1 host": "ansible one",
            f"ansible --check, {args.hosts} hosts": "ansible fleet",
        }
        print(
            f"\n{args.hosts} converged hosts on {os.cpu_count()} cores, medians of {args.runs} "
            f"(wall seconds; CPU seconds per run: admin side / each target):"
        )
        for name, samples in results.items():
            line = f"  {name:34} {statistics.median(samples):7.3f}  (min {min(samples):.3f}, max {max(samples):.3f})"
            if name in cpu_of:
                admin, targets = CPU[cpu_of[name]]
                line += f"  CPU {admin:.2f} / " + " ".join(f"{t:.2f}" for t in targets)
            print(line)
        print(f"  SSH sessions per converged remote plan (one host): {per_plan}")
        print(
            "  load average (1, 5, 15 min) before: "
            + ", ".join(f"{x:.2f}" for x in load_before)
            + "; after: "
            + ", ".join(f"{x:.2f}" for x in load_after)
        )
        med = {k: statistics.median(v) for k, v in results.items()}
        one, fleet = med["reconciler, 1 host"], med[f"reconciler, {args.hosts} hosts"]
        rtt = med["SSH round trip (open connection)"]
        local = med[f"local plan on the host ({USER})"]
        budget = local + 2 * rtt
        admin_n, targets_n = CPU["fleet"]
        floor = (admin_n + sum(targets_n)) / (os.cpu_count() or 1)
        ansible_one = med["ansible --check, 1 host"] / one
        ansible_n = med[f"ansible --check, {args.hosts} hosts"] / fleet
        rows = [
            (
                "remote plan / (local plan + 2 round trips)",
                f"{one:.3f} / {budget:.3f} s = {one / budget:.2f}x",
                "<= 1.00x",
                one <= budget,
            ),
            (
                f"fleet of {args.hosts} / one host",
                f"{fleet:.3f} / {one:.3f} s = {fleet / one:.2f}x",
                "<= 1.50x",
                fleet <= 1.5 * one,
            ),
            (
                "ansible --check / reconciler, 1 host",
                f"{ansible_one:.1f}x",
                ">= 10x",
                ansible_one >= 10,
            ),
            (
                f"ansible --check / reconciler, {args.hosts} hosts",
                f"{ansible_n:.1f}x",
                ">= 10x",
                ansible_n >= 10,
            ),
        ]
        print("\nissue 20's budgets, side by side:")
        for label, measured, target, met in rows:
            print(f"  {label:44} {measured:32} {target:9} {'met' if met else 'NOT met'}")
        print(
            f"  (the fleet's CPU, {admin_n + sum(targets_n):.2f} s per run, over "
            f"{os.cpu_count()} cores: no fleet plan can take less than {floor:.3f} s here, "
            f"{floor / one:.2f}x one host)"
        )
        print(json.dumps({k: statistics.median(v) for k, v in results.items()}))
    finally:
        for c in containers:
            c.destroy()
        net.destroy()


if __name__ == "__main__":
    main()

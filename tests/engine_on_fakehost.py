"""Drive the real engine (probes, planner, runner, apply) against a FakeHost.

Only the host is fake: every command goes through the real runner and `sh` to the fake
executables, every file operation through the real file code into the fake root.
"""

from __future__ import annotations

import os
from pathlib import Path

from fakehost import FakeHost

from reconciler.app.plan_pass import probe_and_plan
from reconciler.core.host import Account, HostContext
from reconciler.core.plan import Plan
from reconciler.kinds import all_kinds
from reconciler.shell.apply import Convergence, converge
from reconciler.shell.runner import HostRunner, ReadOnlyRunner
from reconciler.spec.model import Spec

ROOT = Account("root", 0, 0, Path("/root"))


def host_context(fake: FakeHost, invoker: str = "user") -> HostContext:
    """A HostContext for the fake: its home, linger dir and /proc; `invoker` is user, root or
    admin (an account that acts as the user through `sudo -n -u`, the fake sudo's rules).

    As root, the runner switches its effective uid to the user's for file writes, so then the
    fake home is handed to the fake user's uid, as on a real host.
    """
    fake.set_caller(invoker)
    if invoker == "root":
        user = Account(fake.user, fake.uid, fake.uid, fake.home)
        _hand_home_to(fake, fake.uid)
    else:
        # "As the user": we are the user, so the files we write are the user's: give the fake
        # user our real uid, and tell the runner we are not privileged (no uid switching).
        uid, gid = os.geteuid(), os.getegid()
        user = Account(fake.user, uid, gid, fake.home)
    me = {"root": ROOT, "admin": Account("admin", user.uid + 5151, user.gid, fake.home)}
    return HostContext(
        hostname=fake.hostname,
        invoker=me.get(invoker, user),
        user=user,
        user_name=fake.user,
        linger_dir=fake.linger_dir,
        proc_root=fake.proc_root,
        systemd_dir=fake.systemd_dir,
        search_path=tuple(fake.path.split(":")),
        privileged=invoker == "root",
        sudo_to_user=invoker == "admin",
    )


def _hand_home_to(fake: FakeHost, uid: int) -> None:
    # The fake home must be reachable and owned by the fake user's uid, as on a real host.
    for parent in [fake.home, *fake.home.parents]:
        if parent == Path("/"):
            break
        os.chmod(parent, os.stat(parent).st_mode | 0o011)
    for dirpath, dirnames, filenames in os.walk(fake.home):
        for name in [dirpath, *(os.path.join(dirpath, n) for n in dirnames + filenames)]:
            os.lchown(name, uid, uid)


def read_only_runner(fake: FakeHost, host: HostContext) -> ReadOnlyRunner:
    return ReadOnlyRunner(host, env=fake.env)


def host_runner(fake: FakeHost, host: HostContext) -> HostRunner:
    return HostRunner(
        host,
        env=fake.env,
        port_answers=lambda port: any(int(e["port"]) == port for e in fake.listeners()),
        sleep=lambda seconds: None,
    )


def plan(fake: FakeHost, spec: Spec, host: HostContext) -> Plan:
    return probe_and_plan(spec, host, read_only_runner(fake, host), all_kinds()).plan


def apply(fake: FakeHost, spec: Spec, host: HostContext) -> Convergence:
    """What `reconciler apply --yes` does: apply, re-probe, apply what became possible."""
    runner = host_runner(fake, host)

    def replan() -> Plan:
        return probe_and_plan(spec, host, runner, all_kinds()).plan

    return converge(replan(), replan, runner)

"""Whoever logs in, the plan is the same (issue 20 #2): an admin account with narrow sudo rules
only (anything as the user, the root-only commands one by one; no rule for python) plans what
the user plans, is told the exact sudoers lines for what it may not do yet, and converges the
host. The real engine on the fake host; its `sudo` checks rules per target user."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import engine_on_fakehost as drive
from fakehost import FakeHost

from reconciler.core.plan import Plan
from reconciler.spec.loader import load_spec
from reconciler.spec.model import Spec

SPEC = Path(__file__).resolve().parents[2] / "specs" / "vm102.yaml"
RULE = re.compile(r"admin ALL=\(root\) NOPASSWD: (\S+) (.*)$")


def _spec(fake: FakeHost) -> Spec:
    spec = load_spec(SPEC)
    return replace(spec, host=replace(spec.host, user=fake.user))


def _shape(plan: Plan, login: str, fake: FakeHost) -> list[str]:
    """What a reader of the plan sees: each step, its operations and why it is blocked (the
    sudoers lines name whoever logged in; each fake host has a folder of its own)."""
    # Not shown, so not compared: the scope a command runs in (the admin writes serves as the
    # user, its operator; the user as itself).
    return [
        re.sub(
            r"scope='\w+', ", "", repr((a.address, a.kind, a.reason, a.operations, a.changes))
        ).replace(str(fake.dir), "HOST")
        + (a.blocked or "").replace(f"{login} ALL=", "LOGIN ALL=")
        for a in plan.actions
    ]


def _planned(login: str, tmp_path: Path) -> tuple[FakeHost, Plan]:
    fake = FakeHost(tmp_path / login)
    fake.allow_sudo(False)  # nothing as root
    fake.allow_sudo(True, as_user=fake.user)  # admin ALL=(user) NOPASSWD: ALL
    return fake, drive.plan(fake, _spec(fake), drive.host_context(fake, login))


def test_an_admin_with_narrow_rules_plans_as_the_user_and_converges(tmp_path: Path) -> None:
    theirs, users = _planned("user", tmp_path)
    fake, admins = _planned("admin", tmp_path)
    assert _shape(admins, "admin", fake) == _shape(users, "user", theirs)
    # The root-only steps are blocked with the exact rule; the user's steps are not.
    rules = [m.groups() for a in admins.blocked if a.blocked and (m := RULE.search(a.blocked))]
    assert sorted(f"{p} {args}" for p, args in rules) == [
        f"/usr/bin/loginctl enable-linger {fake.user}",
        f"/usr/bin/tailscale set --operator={fake.user}",
    ]
    assert any(a.address == "profile[ops].service" for a in admins.runnable)

    # Those lines added (argv prefixes, as sudoers matches them): the admin converges the host.
    fake.allow_sudo([[p.rsplit("/", 1)[1], *args.split(" ")] for p, args in rules])
    host = drive.host_context(fake, "admin")
    drive.apply(fake, _spec(fake), host)
    after = drive.plan(fake, _spec(fake), host)
    assert after.runnable == (), [a.address for a in after.runnable]
    # Every command of the user's ran as the user through sudo -n -u, never as root.
    calls = fake.calls()
    user_side = [c for c in calls if c["tool"] == "systemctl" and "--user" in c["argv"]]
    assert user_side and all(c["caller"] == fake.user for c in user_side)
    serve = [c for c in calls if c["tool"] == "tailscale" and c["argv"][1:2] == ["serve"]]
    assert serve and all(c["caller"] == fake.user for c in serve if c["mutating"])
    assert fake.linger(fake.user)

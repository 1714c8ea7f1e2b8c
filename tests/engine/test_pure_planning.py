"""Planning is pure, provably: with the machine's filesystem, PATH lookups and subprocesses all
raising, every kind declares its probes and plans, for every valid spec of the corpus.

The facts come from a live probe pass on a fake host (run before the machine is sealed); the
sealed pass answers every probe from that record and must make the very same plan.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

import engine_on_fakehost as drive
import pytest
from fakehost import FakeHost
from sealed_host import HostRead, sealed_machine

from reconciler.app.plan_pass import plan_from_facts
from reconciler.core.host import Account
from reconciler.core.probe import Facts, Probe, ProbeFailed, ProbeSession
from reconciler.kinds import all_kinds
from reconciler.spec.loader import load_spec
from reconciler.spec.model import Spec

ROOT_DIR = Path(__file__).resolve().parents[2]
CORPUS = sorted((ROOT_DIR / "tests/data/specs/valid").glob("*.yaml")) + sorted(
    (ROOT_DIR / "specs").glob("*.yaml")
)


def test_the_seal_holds() -> None:
    """The guard itself: each way of reading the host raises under it."""
    with sealed_machine():
        for attempt in (
            lambda: Path("/etc/hostname").exists(),
            lambda: Path("/etc/hostname").read_text(),
            lambda: os.listdir("/"),
            lambda: shutil.which("sh"),
            lambda: subprocess.run(["true"], check=False),
            lambda: Path("/usr").is_dir(),
        ):
            with pytest.raises(HostRead):
                attempt()


class Recorder:
    """A live probe session that keeps every answer, then answers from what it kept."""

    def __init__(self, session: ProbeSession) -> None:
        self.session = session
        self.values: dict[Probe[Any], Any] = {}

    def live(self, probes: Iterable[Probe[Any]]) -> Facts:
        facts = self.session.collect(probes)
        self.values.update(facts.values)
        return facts

    def recorded(self, probes: Iterable[Probe[Any]]) -> Facts:
        return Facts(
            {p: self.values.get(p, ProbeFailed(f"not recorded: {p!r}")) for p in probes}, {}
        )


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.name)
@pytest.mark.parametrize("invoker", ["user", "root"])
def test_every_kind_plans_without_reading_the_host(
    path: Path, invoker: str, tmp_path: Path
) -> None:
    fake = FakeHost(tmp_path)
    fake.set_linger(fake.user, True)
    host = drive.host_context(fake, invoker)
    spec: Spec = replace(load_spec(path), host=replace(load_spec(path).host, user=fake.user))
    recorder = Recorder(ProbeSession(host, drive.read_only_runner(fake, host).run))
    live = plan_from_facts(spec, host, all_kinds(), recorder.live, "t").plan

    kinds = all_kinds()
    with sealed_machine():
        sealed = plan_from_facts(spec, host, kinds, recorder.recorded, "t").plan
        found = recorder.recorded(p for k in kinds for p in k.discover(spec, host))
        for kind in kinds:
            list(kind.probes(spec, host, found))
    assert sealed == live


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.name)
def test_a_missing_user_plans_without_reading_the_host(path: Path) -> None:
    spec = load_spec(path)
    me = Account("someone", 4242, 4242, Path("/nonexistent"))
    host = drive.HostContext("vm102", me, None, spec.host.user)

    def nothing_known(probes: Iterable[Probe[Any]]) -> Facts:
        return Facts({p: ProbeFailed("not recorded") for p in probes}, {})

    with sealed_machine():
        probed = plan_from_facts(spec, host, all_kinds(), nothing_known, "t")
    assert probed.plan.blocked or probed.plan.errors

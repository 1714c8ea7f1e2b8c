"""A probe session starts every probe command at once and keeps each result with its probe."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

from reconciler.core.command import Command, CommandResult
from reconciler.core.host import Account, HostContext
from reconciler.core.probe import Probe, ProbeSession

USER = Account("user", 1000, 1000, Path("/home/user"))
HOST = HostContext(hostname="vm102", invoker=USER, user=USER, user_name="user")


@dataclass(frozen=True)
class Echo(Probe[str]):
    word: str

    def command(self, host: HostContext) -> Command:
        return Command(("echo", self.word))

    def parse(self, result: CommandResult) -> str:
        return result.stdout


@pytest.mark.parametrize("count", [2, 7, 12])
def test_every_command_runs_at_the_same_time(count: int) -> None:
    # Each command waits until all of them have started: run one after the other, or in a
    # pool smaller than `count`, this would break the barrier instead.
    barrier = threading.Barrier(count, timeout=10)

    def run(command: Command) -> CommandResult:
        barrier.wait()
        return CommandResult(command, command.argv, 0, stdout=command.argv[1])

    probes = [Echo(f"w{i}") for i in range(count)]
    facts = ProbeSession(HOST, run).collect(probes)
    assert [facts.get(p) for p in probes] == [f"w{i}" for i in range(count)]


def test_a_runner_that_raises_fails_the_session() -> None:
    def run(command: Command) -> CommandResult:
        if command.argv[1] == "bad":
            raise RuntimeError("runner bug")
        return CommandResult(command, command.argv, 0, stdout="ok")

    with pytest.raises(RuntimeError, match="runner bug"):
        ProbeSession(HOST, run).collect([Echo("good"), Echo("bad"), Echo("other")])

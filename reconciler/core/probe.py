"""Probes: each is the command it needs plus a pure parser (or an in-process read).

Probes are frozen dataclasses, so equal probes asked for by several kinds run once. A probe
whose subclass is `BatchedProbe` is merged with its siblings into one command (one
`systemctl --user show` for every unit, whatever the number of profiles).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Generic, TypeVar, cast

from reconciler.core.command import Command, CommandResult
from reconciler.core.host import HostContext
from reconciler.frozen import frozen

T = TypeVar("T")


class ProbeFailed(Exception):
    """A probe's command failed in a way its parser does not model, or its output was garbage."""


class Probe(Generic[T]):
    """Base class. Subclass as a frozen dataclass and implement `command`+`parse` or `read`."""

    def command(self, host: HostContext) -> Command | None:
        """The read-only command to run; None for probes read in-process."""
        return None

    def parse(self, result: CommandResult) -> T:
        """Pure: the command's result (exit code, stdout, stderr) -> a typed fact."""
        raise NotImplementedError

    def read(self, host: HostContext) -> T:
        """In-process probes (files, /proc) override this instead of command/parse."""
        raise NotImplementedError


class BatchedProbe(Probe[T]):
    """A probe merged with every other instance of its class into one command."""

    @classmethod
    def batch_command(cls, probes: list[Any], host: HostContext) -> Command:
        raise NotImplementedError

    @classmethod
    def batch_parse(cls, probes: list[Any], result: CommandResult) -> dict[Any, T]:
        raise NotImplementedError


@frozen
class Facts:
    """Parsed probe results, keyed by probe. `get` re-raises a probe's failure."""

    values: Mapping[Probe[Any], Any]
    results: Mapping[Probe[Any], CommandResult]  # raw results, for --debug and snapshots

    def merged(self, other: Facts) -> Facts:
        """These facts and `other`'s (a discovery round's and the main round's)."""
        return Facts({**self.values, **other.values}, {**self.results, **other.results})

    def get(self, probe: Probe[T]) -> T:
        value = self.values[probe]
        if isinstance(value, ProbeFailed):
            raise value
        return cast(T, value)


RunCommand = Callable[[Command], CommandResult]


@frozen
class _Job:
    probes: tuple[Probe[Any], ...]
    command: Command
    batched: bool


class ProbeSession:
    """Runs a set of probes: in-process reads directly, commands concurrently, batches merged."""

    def __init__(self, host: HostContext, run: RunCommand) -> None:
        self.host = host
        self.run = run

    def collect(self, probes: Iterable[Probe[Any]]) -> Facts:
        unique = list(dict.fromkeys(probes))
        values: dict[Probe[Any], Any] = {}
        results: dict[Probe[Any], CommandResult] = {}
        jobs: list[_Job] = []
        batches: dict[type, list[Probe[Any]]] = {}
        for probe in unique:
            if isinstance(probe, BatchedProbe):
                batches.setdefault(type(probe), []).append(probe)
                continue
            command = probe.command(self.host)
            if command is None:
                values[probe] = _guard(functools.partial(probe.read, self.host))
            else:
                jobs.append(_Job((probe,), command, batched=False))
        for cls, members in sorted(batches.items(), key=lambda item: item[0].__name__):
            batch_cls = cast(type[BatchedProbe[Any]], cls)
            jobs.append(_Job(tuple(members), batch_cls.batch_command(members, self.host), True))

        for command in (job.command for job in jobs):
            if command.mutating:
                raise AssertionError(f"a probe asked for a mutating command: {command.display()}")

        outcomes = _run_at_once([job.command for job in jobs], self.run)

        for job, result in zip(jobs, outcomes, strict=True):
            for probe in job.probes:
                results[probe] = result
            if result.timed_out:
                # A hung command proves nothing about the host (a hung `systemctl --user` is not
                # a manager without linger): the plan fails, it never turns this into "blocked".
                failed = ProbeFailed(f"{job.command.display()}: {result.error}")
                values.update(dict.fromkeys(job.probes, failed))
            elif job.batched:
                members = list(job.probes)
                batch_cls = cast(type[BatchedProbe[Any]], type(members[0]))
                parsed = _guard(functools.partial(batch_cls.batch_parse, members, result))
                for probe in members:
                    values[probe] = parsed if isinstance(parsed, ProbeFailed) else parsed[probe]
            else:
                probe = job.probes[0]
                values[probe] = _guard(functools.partial(probe.parse, result))
        return Facts(values=values, results=results)


def _guard(fn: Callable[[], Any]) -> Any:
    """Turn a parser's failure into a ProbeFailed fact instead of a crash of the whole plan."""
    try:
        return fn()
    except ProbeFailed as exc:
        return exc
    except (ValueError, KeyError, TypeError, IndexError, OSError) as exc:
        return ProbeFailed(f"{type(exc).__name__}: {exc}")


def _run_at_once(commands: list[Command], run: RunCommand) -> list[CommandResult]:
    """Run every command at the same time (one thread each: they wait on their child, not
    the CPU), results in order. A plan runs a handful of probe commands, so no pool: starting
    them all at once is what makes a plan as fast as its slowest probe."""
    if len(commands) < 2:
        return [run(command) for command in commands]
    outcomes: list[CommandResult | BaseException | None] = [None] * len(commands)

    def one(index: int) -> None:
        try:
            outcomes[index] = run(commands[index])
        except BaseException as exc:  # re-raised in the caller's thread, as a pool would
            outcomes[index] = exc

    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(len(commands))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
    return cast(list[CommandResult], outcomes)

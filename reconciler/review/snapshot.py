"""Snapshots: the actual state of a host, recorded by `reconciler probe`, planned against anywhere.

PR CI cannot reach the host. `reconciler probe SPEC --out snapshot.json` (on the host) records
the facts of one probe session, redacted; `reconciler plan SPEC --against snapshot.json` (in CI)
builds a HostContext from it and answers every probe from it: no subprocess, no file of the CI
machine is read (the HostContext's `recorded` lookups replace `locate` and the unit directory
listing).

What is recorded, and what never is:
- the HostContext (hostname, invoker, the spec's user and home, search path, root or not);
- every fact the kinds asked for, plus what the modules that define facts declare with
  `@records` for any spec (facts a later spec may ask for, where the programs the kinds look
  for are, the names (only) in the directories new profiles would live in, limited to the
  names a gateway path can have), so that a PR adding a profile plans against "that path does
  not exist" instead of "unknown";
- every listening TCP socket (port, address, uid, pid, command line), so a new port is checked.
- Never a secret: each fact redacts itself (`redacted`), and of a file's text only what a
  `@keeps_file_content` rule keeps survives (a gateway config: the owned keys; a unit file:
  every line with secret-looking values masked); any other file content is dropped.

This module is a generic codec: it knows no probe, fact or kind. Each probe and fact class is
`@recorded` where it is defined (reconciler/facts/codec.py), and says itself how a snapshot
answers it when the snapshot did not record it (`answer_from`). A probe the snapshot cannot
answer (a path it never looked at, a spec for another user) is a `ProbeFailed` saying so: the
plan reports "could not read the host" for that kind, it never guesses. A probe class that is
not `@recorded` is an error when recording, never silently left out.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from reconciler import __version__
from reconciler.bounded import loads_json, read_bounded
from reconciler.core.host import Account, HostContext, RecordedLookups
from reconciler.core.probe import Facts, Probe, ProbeFailed
from reconciler.facts.codec import (
    AnswersFromSnapshot,
    CodecError,
    FileTextContext,
    Redaction,
    Registry,
    Wanted,
    decode,
    decode_dataclass,
    decode_fact,
    encode,
    file_text_rules,
    recorded_classes,
    redact_value,
    wanted,
)
from reconciler.facts.files import PathProbe, PathState
from reconciler.facts.listeners import Listener, ListenersProbe, parse_proc_net_tcp
from reconciler.facts.programs import locate
from reconciler.frozen import frozen
from reconciler.render.redaction import redact_text
from reconciler.spec.model import Spec

FORMAT_VERSION = "1"
KIND = "reconciler-snapshot"

MAX_SNAPSHOT_BYTES = 256 * 1024 * 1024  # configs and unit files of many profiles


class SnapshotInvalid(Exception):
    """The file is not a snapshot this version can read."""


@frozen
class DirectoryNames:
    """The names in a directory, as far as the snapshot looked (`prefixes`: only those)."""

    path: Path
    exists: bool
    names: tuple[str, ...] = ()
    prefixes: tuple[str, ...] = ()  # empty: every name was recorded

    def covers(self, name: str) -> bool:
        """True when the listing would have recorded `name`, had it been there."""
        return not self.prefixes or name.startswith(self.prefixes)


@frozen
class Snapshot:
    """The actual state of one host, as recorded (already redacted)."""

    recorded_at: str
    spec_path: str | None
    spec_sha256: str | None
    host: HostContext  # without `recorded`: see host_context()
    programs: tuple[tuple[str, str | None], ...]
    directories: tuple[DirectoryNames, ...]
    listeners: tuple[Listener, ...] | None  # every listening TCP socket; None: not recorded
    facts: Mapping[Probe[Any], Any] = dataclasses.field(repr=False)
    # Where `reconciler probe` ran: a relative spec path is resolved against it, as the
    # timer's invocation probe does on the host.
    working_directory: Path | None = None

    def host_context(self) -> HostContext:
        """The recorded host, answering every lookup from the snapshot (never from this disk)."""
        lookups = RecordedLookups(
            programs=self.programs,
            directories=tuple((d.path, d.names) for d in self.directories if d.exists),
        )
        return replace(self.host, recorded=lookups)


# The modules that define recorded probe and fact classes register them when imported; every
# one of them is imported by the kinds package (named here by string: no kind is known here).
_DEFINING_PACKAGE = "reconciler.kinds"


def registry() -> Registry:
    """Every class a snapshot may hold: the `@recorded` probes and facts, and the host context."""
    importlib.import_module(_DEFINING_PACKAGE)
    return recorded_classes(HostContext, Account, DirectoryNames)


# --- redaction: what a snapshot may hold ---------------------------------------------------------

CONTENT_DROPPED = "content not recorded in snapshots"


def file_text_keeper(
    spec: Spec, host: HostContext
) -> Callable[[Path, str], tuple[str | None, str | None]]:
    """What a snapshot keeps of a file's text: (text, error), by the first registered rule
    (`@keeps_file_content`) that owns the file; nothing for a file no rule owns (a new kind
    reading another file must decide what of it is safe to keep)."""
    context = FileTextContext(spec, host, redact_text)
    rules = file_text_rules(host)

    def keep(path: Path, text: str) -> tuple[str | None, str | None]:
        for rule in rules:
            kept = rule(context, path, text)
            if kept is not None:
                return kept
        return None, CONTENT_DROPPED

    return keep


def redaction_for(spec: Spec, host: HostContext) -> Redaction:
    """The redaction of a snapshot recorded for `spec` on `host`."""
    registry()  # the rules are registered where the files' kinds are defined
    return Redaction(text=redact_text, file_text=file_text_keeper(spec, host))


# --- recording (the effect shell calls these with a live probe session) --------------------------


class RecordingCollector:
    """Wraps a probe session's `collect`, keeping every fact it returns."""

    def __init__(self, collect: Callable[[Iterable[Probe[Any]]], Facts]) -> None:
        self._collect = collect
        self.values: dict[Probe[Any], Any] = {}

    def collect(self, probes: Iterable[Probe[Any]]) -> Facts:
        facts = self._collect(probes)
        self.values.update(facts.values)
        return facts


def everything_wanted(spec: Spec, host: HostContext) -> Wanted:
    """What every module registered with `@records` wants recorded for `spec`, merged:
    probes and programs once each, a directory listed once with the union of the prefixes."""
    registry()
    probes: dict[Probe[Any], None] = {}
    programs: dict[str, None] = {}
    directories: dict[Path, tuple[str, ...]] = {}
    for want in wanted(spec, host):
        probes.update(dict.fromkeys(want.probes))
        programs.update(dict.fromkeys(want.programs))
        for path, prefixes in want.directories:
            known = directories.get(path)
            if known is None:
                directories[path] = prefixes
            elif known and prefixes:  # () means every name: it stays so
                directories[path] = tuple(dict.fromkeys((*known, *prefixes)))
            else:
                directories[path] = ()
    return Wanted(tuple(probes), tuple(programs), tuple(directories.items()))


def extra_probes(spec: Spec, host: HostContext) -> list[Probe[Any]]:
    """Facts any later spec may ask for, recorded whatever this spec asks."""
    return list(everything_wanted(spec, host).probes)


def list_names(path: Path, prefixes: tuple[str, ...]) -> DirectoryNames:
    """The names in `path` that start with one of `prefixes` (all names when there are none)."""
    try:
        entries = os.listdir(path)
    except (FileNotFoundError, NotADirectoryError):
        return DirectoryNames(path, False, (), prefixes)
    except OSError:
        # Unreadable: record nothing, so that nothing is derived from it.
        return DirectoryNames(path, True, (), ("\0",))
    names = sorted(n for n in entries if not prefixes or n.startswith(prefixes))
    return DirectoryNames(path, True, tuple(names), prefixes)


def all_listeners(host: HostContext) -> tuple[Listener, ...]:
    """Every listening TCP socket (with its process when visible), read from /proc.

    Recorded whole, so that a plan against the snapshot can check a port no profile had yet.
    """
    ports: set[int] = set()
    for table in ("tcp", "tcp6"):
        try:
            text = (host.proc_root / "net" / table).read_text(encoding="ascii")
        except OSError:
            continue
        ports |= {s.port for s in parse_proc_net_tcp(text)}
    return ListenersProbe(tuple(sorted(ports))).read(host) if ports else ()


def record_snapshot(
    spec: Spec,
    host: HostContext,
    facts: Mapping[Probe[Any], Any],
    *,
    recorded_at: str,
    listeners: tuple[Listener, ...] | None,
) -> Snapshot:
    """The snapshot of `host` for `spec`, from the facts of a probe session (redacted here).

    Reads what it records besides the facts (the effect of `reconciler probe`): directory names,
    program locations, the working directory. `facts` and `listeners` come from the caller.
    Every probe must be `@recorded`: one that is not is an error, never silently left out (the
    plan made from the snapshot would otherwise miss a fact the live plan had).
    """
    registered = registry()
    unknown = sorted({type(p).__name__ for p in facts if type(p) not in registered})
    if unknown:
        raise TypeError(
            f"probe class(es) {', '.join(unknown)} not registered with the snapshot codec: "
            "decorate each with @recorded (reconciler/facts/codec.py) where it is defined"
        )
    redaction = redaction_for(spec, host)
    want = everything_wanted(spec, host)
    return Snapshot(
        recorded_at=recorded_at,
        spec_path=str(spec.path) if spec.path is not None else None,
        spec_sha256=spec.sha256,
        host=replace(host, privileged=host.is_root, recorded=None),
        programs=tuple((name, locate(name, host)) for name in want.programs),
        directories=tuple(list_names(path, prefixes) for path, prefixes in want.directories),
        listeners=None if listeners is None else redact_value(listeners, redaction),
        facts={probe: redact_value(value, redaction) for probe, value in facts.items()},
        working_directory=Path.cwd(),
    )


# --- the file ------------------------------------------------------------------------------------


def snapshot_document(snapshot: Snapshot) -> dict[str, Any]:
    """The snapshot as JSON-ready data; facts sorted, so re-recording an unchanged host gives
    the same file (a snapshot in git changes only where the host did)."""
    registered = registry()
    facts = [
        {"probe": encode(probe, registered), "value": encode(value, registered)}
        for probe, value in snapshot.facts.items()
    ]
    facts.sort(key=lambda entry: json.dumps(entry["probe"], sort_keys=True))
    return {
        "format_version": FORMAT_VERSION,
        "kind": KIND,
        "generator": {"name": "reconciler", "version": __version__},
        "recorded_at": snapshot.recorded_at,
        "spec": {"path": snapshot.spec_path, "sha256": snapshot.spec_sha256},
        "host": encode(snapshot.host, registered),
        "programs": dict(snapshot.programs),
        "directories": [encode(d, registered) for d in snapshot.directories],
        "listeners": None
        if snapshot.listeners is None
        else [encode(x, registered) for x in snapshot.listeners],
        "working_directory": encode(snapshot.working_directory, registered),
        "facts": facts,
    }


def snapshot_text(snapshot: Snapshot) -> str:
    return json.dumps(snapshot_document(snapshot), indent=2, ensure_ascii=False) + "\n"


def unchanged_since(snapshot: Snapshot, previous: Snapshot) -> Snapshot:
    """`snapshot`, stamped with `previous.recorded_at` when both record the same state.

    `recorded_at` says since when the file's state has been recorded: re-recording an unchanged
    host then writes the very same file (a snapshot kept in git changes only where the host
    did), while a changed host gets the time of the new recording.
    """
    stamped = replace(snapshot, recorded_at=previous.recorded_at)

    def canonical(recorded: Snapshot) -> str:
        return json.dumps(snapshot_document(recorded), sort_keys=True)

    return stamped if canonical(stamped) == canonical(previous) else snapshot


@frozen
class LoadedSnapshot:
    """A snapshot read from a file, with the file's path and sha256 (named in plans)."""

    snapshot: Snapshot
    path: Path
    sha256: str


def load_snapshot(path: Path) -> LoadedSnapshot:
    """Read a snapshot file; SnapshotInvalid says what is wrong, and where."""
    try:
        data = read_bounded(path, MAX_SNAPSHOT_BYTES)
        doc = loads_json(data, source=path)
    except OSError as exc:
        raise SnapshotInvalid(f"{path}: cannot read the snapshot: {exc.strerror}") from None
    except ValueError:
        raise SnapshotInvalid(
            f"{path}: not a snapshot (not JSON); record one with `reconciler probe SPEC --out FILE`"
        ) from None
    return LoadedSnapshot(parse_snapshot(doc, str(path)), path, hashlib.sha256(data).hexdigest())


def parse_snapshot(doc: Any, where: str) -> Snapshot:
    """A snapshot document (parsed JSON) -> Snapshot; SnapshotInvalid names the bad part."""
    if not isinstance(doc, dict) or doc.get("kind") != KIND:
        raise SnapshotInvalid(
            f'{where}: not a snapshot (no "kind": "{KIND}"); record one with '
            "`reconciler probe SPEC --out FILE`"
        )
    if doc.get("format_version") != FORMAT_VERSION:
        raise SnapshotInvalid(
            f"{where}: snapshot format_version {doc.get('format_version')!r} is not supported "
            f"(this reconciler reads {FORMAT_VERSION!r}): record it again with this version"
        )
    registered = registry()
    try:
        host = decode_dataclass(doc.get("host"), registered, "host", expected=HostContext)
        programs = decode(doc.get("programs", {}), dict[str, str | None], registered, "programs")
        directories = decode(
            doc.get("directories", []), tuple[DirectoryNames, ...], registered, "directories"
        )
        listeners = decode(
            doc.get("listeners"), tuple[Listener, ...] | None, registered, "listeners"
        )
        facts: dict[Probe[Any], Any] = {}
        entries = doc.get("facts", [])
        if not isinstance(entries, list):
            raise CodecError("facts: expected a list")
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict) or "probe" not in entry or "value" not in entry:
                raise CodecError(f"facts[{i}]: expected {{probe, value}}")
            probe = decode_dataclass(entry["probe"], registered, f"facts[{i}].probe", Probe)
            facts[probe] = decode_fact(entry["value"], probe, registered, f"facts[{i}].value")
        spec = doc.get("spec") or {}
        return Snapshot(
            recorded_at=decode(doc.get("recorded_at"), str, registered, "recorded_at"),
            spec_path=decode(spec.get("path"), str | None, registered, "spec.path"),
            spec_sha256=decode(spec.get("sha256"), str | None, registered, "spec.sha256"),
            host=replace(host, recorded=None),
            programs=tuple(sorted(programs.items())),
            directories=directories,
            listeners=listeners,
            facts=facts,
            working_directory=decode(
                doc.get("working_directory"), Path | None, registered, "working_directory"
            ),
        )
    except CodecError as exc:
        raise SnapshotInvalid(f"{where}: {exc}") from None


# --- answering probes from a snapshot (pure) ------------------------------------------------------


class SnapshotFacts:
    """Answers probes from a snapshot: what it recorded, what follows from it (each probe's
    `answer_from`), or ProbeFailed. Implements `RecordedHost` (reconciler/facts/codec.py)."""

    def __init__(self, snapshot: Snapshot, source: str = "the snapshot") -> None:
        self.snapshot = snapshot
        self.source = source
        self.host = snapshot.host_context()
        self.working_directory = snapshot.working_directory
        self.listeners = snapshot.listeners
        self.directories = {d.path: d for d in snapshot.directories}
        self.paths: dict[Path, PathState] = {}
        for probe, value in snapshot.facts.items():
            if isinstance(probe, PathProbe) and isinstance(value, PathState):
                self.paths.setdefault(probe.path, value)

    def collect(self, probes: Iterable[Probe[Any]]) -> Facts:
        """The `collect` of a probe session, for `plan_from_facts`."""
        return Facts(values={p: self.answer(p) for p in dict.fromkeys(probes)}, results={})

    def answer(self, probe: Probe[Any]) -> Any:
        facts = self.snapshot.facts
        if probe in facts:
            return facts[probe]
        derived = probe.answer_from(self) if isinstance(probe, AnswersFromSnapshot) else None
        if derived is not None:
            return derived
        return ProbeFailed(
            f"{_describe(probe)} is not in {self.source} (recorded "
            f"{self.snapshot.recorded_at} for {self.snapshot.spec_path or 'another spec'}); "
            "record a new snapshot on the host: reconciler probe SPEC --out FILE"
        )

    def fact(self, probe: Probe[Any]) -> Any:
        """The recorded fact of `probe` (None when it was not recorded)."""
        return self.snapshot.facts.get(probe)

    def facts_of(self, cls: type[Any]) -> list[Any]:
        """Every recorded fact of type `cls`, in recording order."""
        return [v for v in self.snapshot.facts.values() if isinstance(v, cls)]

    def known_missing(self, path: Path) -> bool:
        """True when the snapshot shows that `path` cannot exist (never a guess)."""
        state = self.paths.get(path)
        if state is not None:
            return state.kind == "missing"
        for ancestor in path.parents:
            child = path.relative_to(ancestor).parts[0]
            listing = self.directories.get(ancestor)
            if listing is not None:
                if not listing.exists:
                    return True
                if child not in listing.names and listing.covers(child):
                    return True
            seen = self.paths.get(ancestor)
            if seen is not None and seen.kind in ("missing", "file", "other"):
                return True
        return False


def _describe(probe: Probe[Any]) -> str:
    fields = ", ".join(
        f"{f.name}={getattr(probe, f.name)}"
        for f in dataclasses.fields(probe)  # type: ignore[arg-type]
    )
    return f"{type(probe).__name__}({fields})"

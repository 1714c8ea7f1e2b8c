"""Snapshots: the actual state of a host, recorded by `reconciler probe`, planned against anywhere.

PR CI cannot reach the host. `reconciler probe SPEC --out snapshot.json` (on the host) records
the facts of one probe session, redacted; `reconciler plan SPEC --against snapshot.json` (in CI)
builds a HostContext from it and answers every probe from it: no subprocess, no file of the CI
machine is read (the HostContext's `recorded` lookups replace `locate` and the unit directory
listing).

What is recorded, and what never is:
- the HostContext (hostname, invoker, the spec's user and home, search path, root or not);
- every fact the kinds asked for, plus a few any spec might ask for (Tailscale, linger, both
  products' gateway command) -- encoded by `fact_codec`;
- where the programs the kinds look for are (`node`, `npm`, `docker`, the gateway commands);
- the names (only) in the directories new profiles would live in, limited to the names a
  gateway path can have (`~/.clawdbot*`, `~/clawd*`, the unit directory's gateway units ...),
  so that a PR adding a profile plans against "that path does not exist" instead of "unknown";
- every listening TCP socket (port, address, uid, pid, command line), so a new port is checked.
- Never: a gateway config's content beyond the keys the spec owns (the config is reduced to
  them, so tokens, passwords and every other key are gone); the value of a secret-looking
  assignment in a unit file or a command line (`X_TOKEN=(sensitive)`); any other file content
  (dropped); an env file's content (its probe keeps only whether the key has a value).

A probe the snapshot cannot answer (a path it never looked at, a spec for another user) is a
`ProbeFailed` saying so: the plan reports "could not read the host" for that kind, it never
guesses. What it does derive: a path under a directory whose listing lacks it is missing; a unit
it never asked about, whose file is not in the unit directory, is not loaded (LoadState
not-found) while the user's manager answered; `sudo` verdicts it never recorded are refusals; a
program it did not look up is not installed (`locate` has no way to say "unknown").
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from reconciler import __version__
from reconciler.core.host import Account, HostContext, RecordedLookups
from reconciler.core.probe import Facts, Probe, ProbeFailed
from reconciler.core.sudo_check import SudoProbe, SudoVerdict
from reconciler.facts.codec import (
    CodecError,
    Registry,
    decode,
    decode_dataclass,
    decode_fact,
    encode,
)
from reconciler.facts.files import (
    DirectoryListing,
    DirectoryProbe,
    PathProbe,
    PathState,
    RealPathProbe,
)
from reconciler.facts.listeners import Listener, ListenersProbe, parse_proc_net_tcp
from reconciler.facts.programs import ProgramVersion, ProgramVersionProbe, locate
from reconciler.facts.systemd import UnitStatus, UnitStatusProbe, unreachable
from reconciler.facts.tailscale import (
    ServeConfig,
    ServeStatusProbe,
    TailscalePrefs,
    TailscalePrefsProbe,
    TailscaleStatus,
    TailscaleStatusProbe,
    WebMount,
)
from reconciler.gateway.naming import GATEWAY_UNIT_PREFIXES, PRODUCTS
from reconciler.gateway.paths import expand, home, profile_paths, unit_dir
from reconciler.kinds.gateway_config import OWNED, ConfigUnreadable, parse_config, render_config
from reconciler.kinds.gateway_unit import SecretEnvProbe, SecretEnvState
from reconciler.kinds.linger import LingerProbe
from reconciler.kinds.reconcile_timer import Invocation, InvocationProbe, invocation_probe
from reconciler.kinds.runtime import DockerProbe, DockerStatus
from reconciler.review.redaction import redact_text
from reconciler.spec.model import Spec

FORMAT_VERSION = "1"
KIND = "reconciler-snapshot"


class SnapshotInvalid(Exception):
    """The file is not a snapshot this version can read."""


@dataclass(frozen=True)
class DirectoryNames:
    """The names in a directory, as far as the snapshot looked (`prefixes`: only those)."""

    path: Path
    exists: bool
    names: tuple[str, ...] = ()
    prefixes: tuple[str, ...] = ()  # empty: every name was recorded

    def covers(self, name: str) -> bool:
        """True when the listing would have recorded `name`, had it been there."""
        return not self.prefixes or name.startswith(self.prefixes)


@dataclass(frozen=True)
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
    # Where `reconciler probe` ran: a relative spec path is resolved against it, as the timer
    # kind's InvocationProbe does on the host.
    working_directory: Path | None = None

    def host_context(self) -> HostContext:
        """The recorded host, answering every lookup from the snapshot (never from this disk)."""
        lookups = RecordedLookups(
            programs=self.programs,
            directories=tuple((d.path, d.names) for d in self.directories if d.exists),
        )
        return replace(self.host, recorded=lookups)


def registry() -> Registry:
    """Every class a snapshot may hold: probes, their facts, and the host context."""
    return Registry(
        [
            # probes
            LingerProbe,
            TailscaleStatusProbe,
            TailscalePrefsProbe,
            ServeStatusProbe,
            ProgramVersionProbe,
            DockerProbe,
            PathProbe,
            RealPathProbe,
            DirectoryProbe,
            SecretEnvProbe,
            UnitStatusProbe,
            ListenersProbe,
            SudoProbe,
            InvocationProbe,
            # facts
            PathState,
            DirectoryListing,
            SecretEnvState,
            ProgramVersion,
            DockerStatus,
            TailscaleStatus,
            TailscalePrefs,
            ServeConfig,
            WebMount,
            UnitStatus,
            Listener,
            SudoVerdict,
            Invocation,
            # the host
            HostContext,
            Account,
            DirectoryNames,
        ]
    )


# --- redaction: what a snapshot may hold ---------------------------------------------------------

CONTENT_DROPPED = "content not recorded in snapshots"
UNREADABLE_CONFIG = "not valid JSON5 (its content is not recorded in snapshots)"
_NOT_AN_OBJECT = "(not an object)"


def owned_config_text(text: str) -> tuple[str | None, str | None]:
    """A gateway config reduced to the keys the spec owns: (text, None) or (None, error).

    Only the owned paths survive (`gateway.mode/port/bind/tailscale.mode`): their scalar values,
    an empty object or list where one stands (the plan only shows its type), a placeholder
    where a parent is not an object (the plan only says so). Tokens, passwords and every other
    key are gone, and the config kind plans the same owned-key changes from the result.
    """
    try:
        doc = parse_config(text, "")
    except ConfigUnreadable:
        return None, UNREADABLE_CONFIG
    kept: dict[str, Any] = {}
    for path in OWNED:
        _keep_path(doc, kept, path)
    return render_config(kept), None


def _keep_path(source: dict[str, Any], target: dict[str, Any], path: tuple[str, ...]) -> None:
    key = path[0]
    if key not in source:
        return
    value = source[key]
    if len(path) == 1:
        target[key] = type(value)() if isinstance(value, dict | list) else value
    elif not isinstance(value, dict):
        target[key] = _NOT_AN_OBJECT
    else:
        child = target.setdefault(key, {})
        if isinstance(child, dict):
            _keep_path(value, child, path[1:])


def recorded_text(
    path: Path, text: str, config_paths: frozenset[Path]
) -> tuple[str | None, str | None]:
    """What a snapshot keeps of a file's text: (text, error).

    Gateway configs: the owned keys only. Unit files: every line, secret-looking assignments
    redacted (the same rule as the unit diff, so the plan's diff is the same). Anything else:
    nothing (a new kind reading another file must decide what of it is safe to keep).
    """
    if path in config_paths:
        return owned_config_text(text)
    if path.suffix in (".service", ".timer"):
        return redact_text(text), None
    return None, CONTENT_DROPPED


def redact_fact(value: Any, config_paths: frozenset[Path]) -> Any:
    """A fact as a snapshot may hold it (see the module docstring)."""
    if isinstance(value, PathState):
        if value.text is None:
            return value
        text, error = recorded_text(value.path, value.text, config_paths)
        return replace(value, text=text, error=error)
    if isinstance(value, DirectoryListing):
        return replace(value, entries=tuple(redact_fact(e, config_paths) for e in value.entries))
    if isinstance(value, Listener):
        return replace(value, cmdline=redact_text(value.cmdline))
    if isinstance(value, tuple):
        return tuple(redact_fact(v, config_paths) for v in value)
    if isinstance(value, ServeConfig):
        return replace(value, web=tuple(_redact_mount(m) for m in value.web))
    if isinstance(value, ProbeFailed):
        return ProbeFailed(redact_text(str(value)))
    return value


def _redact_mount(mount: WebMount) -> WebMount:
    handlers = copy.deepcopy(mount.handlers)
    for handler in handlers.values():
        for key, item in handler.items():
            if isinstance(item, str):
                handler[key] = redact_text(item)
    return replace(mount, handlers=handlers)


def config_paths(spec: Spec, host: HostContext) -> frozenset[Path]:
    """The gateway config file of every profile (their text is reduced to the owned keys)."""
    if host.user is None:
        return frozenset()
    return frozenset(profile_paths(spec, p, host).config for p in spec.profiles)


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


def extra_probes(spec: Spec, host: HostContext) -> list[Probe[Any]]:
    """Facts any later spec may ask for, recorded whatever this spec asks."""
    probes: list[Probe[Any]] = [
        TailscaleStatusProbe(),
        ServeStatusProbe(),
        TailscalePrefsProbe(),
        LingerProbe(spec.host.user),
    ]
    probes += [ProgramVersionProbe.find(names.command, host) for names in PRODUCTS.values()]
    if host.user is not None:
        probes.append(invocation_probe(spec, host))  # the timer's ExecStart, whatever the spec
    return probes


def program_names(spec: Spec) -> tuple[str, ...]:
    """The programs kinds look for (`locate`): node, npm, docker and the gateway commands."""
    names = ["node", "npm", "docker", *(p.command for p in PRODUCTS.values())]
    if spec.runtime.gateway.command:
        names.append(spec.runtime.gateway.command)
    return tuple(dict.fromkeys(names))


def listed_directories(spec: Spec, host: HostContext) -> list[tuple[Path, tuple[str, ...]]]:
    """(directory, name prefixes) to list: where a new profile's paths would be."""
    if host.user is None:
        return []
    home_dir = home(host)
    home_prefixes = {".config"}
    for names in PRODUCTS.values():
        home_prefixes |= {f".{names.state_prefix}", names.workspace_prefix}
    others: set[Path] = set()
    for profile in spec.profiles:
        for given in (profile.state_dir, profile.workspace):
            if given is None:
                continue
            path = expand(given, home_dir)
            if path.parent == home_dir:
                home_prefixes.add(path.name)
            else:
                others.add(path.parent)
    listed = [
        (home_dir, tuple(sorted(home_prefixes))),
        (home_dir / ".config", ("systemd",)),
        (home_dir / ".config/systemd", ("user",)),
        (unit_dir(host), (*GATEWAY_UNIT_PREFIXES, "reconciler.")),
    ]
    listed += [(path, ()) for path in sorted(others)]
    return listed


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
    """
    registered = registry()
    paths = config_paths(spec, host)
    kept = {
        probe: redact_fact(value, paths)
        for probe, value in facts.items()
        if type(probe) in registered
    }
    return Snapshot(
        recorded_at=recorded_at,
        spec_path=str(spec.path) if spec.path is not None else None,
        spec_sha256=spec.sha256,
        host=replace(host, privileged=host.is_root, recorded=None),
        programs=tuple((name, locate(name, host)) for name in program_names(spec)),
        directories=tuple(list_names(p, pre) for p, pre in listed_directories(spec, host)),
        listeners=None if listeners is None else redact_fact(listeners, paths),
        facts=kept,
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


@dataclass(frozen=True)
class LoadedSnapshot:
    """A snapshot read from a file, with the file's path and sha256 (named in plans)."""

    snapshot: Snapshot
    path: Path
    sha256: str


def load_snapshot(path: Path) -> LoadedSnapshot:
    """Read a snapshot file; SnapshotInvalid says what is wrong, and where."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SnapshotInvalid(f"{path}: cannot read the snapshot: {exc.strerror}") from None
    try:
        doc = json.loads(data)
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
    """Answers probes from a snapshot: what it recorded, what follows from it, or ProbeFailed."""

    def __init__(self, snapshot: Snapshot, source: str = "the snapshot") -> None:
        self.snapshot = snapshot
        self.source = source
        self.host = snapshot.host_context()
        self.directories = {d.path: d for d in snapshot.directories}
        self.paths: dict[Path, PathState] = {}
        for probe, value in snapshot.facts.items():
            if isinstance(probe, PathProbe) and isinstance(value, PathState):
                self.paths.setdefault(probe.path, value)
        self.statuses = [v for v in snapshot.facts.values() if isinstance(v, UnitStatus)]

    def collect(self, probes: Iterable[Probe[Any]]) -> Facts:
        """The `collect` of a probe session, for `plan_from_facts`."""
        return Facts(values={p: self.answer(p) for p in dict.fromkeys(probes)}, results={})

    def answer(self, probe: Probe[Any]) -> Any:
        facts = self.snapshot.facts
        if probe in facts:
            return facts[probe]
        derived = self._derive(probe)
        if derived is not None:
            return derived
        return ProbeFailed(
            f"{_describe(probe)} is not in {self.source} (recorded "
            f"{self.snapshot.recorded_at} for {self.snapshot.spec_path or 'another spec'}); "
            "record a new snapshot on the host: reconciler probe SPEC --out FILE"
        )

    def _derive(self, probe: Probe[Any]) -> Any:
        if isinstance(probe, PathProbe):
            other = self.snapshot.facts.get(PathProbe(probe.path, not probe.content))
            if isinstance(other, PathState):
                if not probe.content:
                    return replace(other, text=None, error=None)
                if other.kind != "file":
                    return other
            return PathState(probe.path, "missing") if self.known_missing(probe.path) else None
        if isinstance(probe, SecretEnvProbe):
            if self.known_missing(probe.path):
                return SecretEnvState(PathState(probe.path, "missing"), False)
            return None
        if isinstance(probe, DirectoryProbe):
            return DirectoryListing(probe.path, False) if self.known_missing(probe.path) else None
        if isinstance(probe, UnitStatusProbe):
            return self._unit_status(probe.unit)
        if isinstance(probe, ListenersProbe):
            if self.snapshot.listeners is None:
                return None
            wanted = set(probe.ports)
            return tuple(x for x in self.snapshot.listeners if x.port in wanted)
        if isinstance(probe, ProgramVersionProbe | DockerProbe) and probe.path is None:
            return probe.read(self.host)  # "not installed": no command, reads nothing
        if isinstance(probe, SudoProbe):
            return SudoVerdict(False, f"{self.source} does not say whether sudo allows this")
        if isinstance(probe, InvocationProbe):
            return self._invocation(probe)
        return None

    def _invocation(self, probe: InvocationProbe) -> Invocation | None:
        """The timer's command line for another spec path: the recorded interpreter, the path
        joined to where `probe` ran (as `resolve()` would, without reading this disk)."""
        recorded = next(
            (v for v in self.snapshot.facts.values() if isinstance(v, Invocation)), None
        )
        cwd = self.snapshot.working_directory
        if recorded is None or cwd is None:
            return None

        def absolute(path: Path | None) -> Path | None:
            return None if path is None else Path(os.path.normpath(cwd / path))

        return Invocation(recorded.python, absolute(probe.spec_path), absolute(probe.clone))

    def _unit_status(self, unit: str) -> UnitStatus | None:
        down = next((s for s in self.statuses if not s.reachable), None)
        if down is not None:
            return unreachable(unit, down.detail)
        if self.statuses and self.known_missing(unit_dir(self.host) / unit):
            # What `systemctl --user show` says of a unit it has no file for.
            return UnitStatus(
                unit, load_state="not-found", active_state="inactive", sub_state="dead"
            )
        return None

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

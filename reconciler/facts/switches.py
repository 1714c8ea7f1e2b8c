"""The reconciler's memory of gateway version switches: bad versions and interrupted switches.

It lives in the spec user's reconciler state directory, `~/.local/state/reconciler/` of the
user who runs the gateways (the one the reconcile timer uses for its run records), never in the
gateway's config (the gateway refuses unknown keys), so that an apply as root and the user's
timer share it:

    gateway-bad-versions.json   {"profiles": {PROFILE: {"version", "failed_at", "reason"}}}
    gateway-switched.json       {"profiles": {PROFILE: {"from", "to", "at"}}}: the last switch
                                that was kept (what `rollback` goes back to by default)
    gateway-failed-installs.json {"versions": {VERSION: {"package_json_sha256", "failed_at",
                                "reason"}}}: installs that failed, not tried again (by the timer
                                either) until the spec asks for another package.json or
                                `update --retry` forgets the record
    switch/PROFILE/intent.json  {"from", "to", "started_at", "unit", "unit_mode",
                                "config_mode"} while a switch runs (SwitchIntent)
    switch/PROFILE/unit         the unit file as it was before the switch (absent: there was none)
    switch/PROFILE/config       the profile's config as it was before the switch
    switch/PROFILE/state/       the profile's state directory, copied with the gateway stopped
                                before the new version first starts (state.complete: done)
    kept-state/PROFILE/         that copy, kept after the switch was kept, until the next one
    rejected-state/PROFILE/     the state a rolled-back release left (it may have migrated it)

Files 0600 in 0700 directories, written atomically as the user (reconciler/shell/switch.py),
read bounded (size and JSON nesting: a deep line is "not ours", never a RecursionError). Each
file has one typed record here (BadVersion, Switched, SwitchIntent, FailedInstall) that the
runner and the use cases pass around; the JSON shapes live only in this module.
A switch killed half way (kill -9, power loss) leaves `intent.json`: the next plan sees it and
runs the gate again with the copies taken before the first attempt.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

from reconciler.bounded import loads_json, read_bounded
from reconciler.core.host import HostContext
from reconciler.core.probe import Probe, ProbeFailed
from reconciler.facts.codec import RecordedHost, Redaction, recorded
from reconciler.frozen import frozen
from reconciler.system.as_user import acting_account, call_as

BAD_VERSIONS = "gateway-bad-versions.json"
SWITCHED = "gateway-switched.json"
FAILED_INSTALLS = "gateway-failed-installs.json"
SWITCH_DIR = "switch"
STATE_COPY = "state"  # switch/PROFILE/state: the state directory, copied with the gateway stopped
STATE_DONE = "state.complete"  # written after the copy: a copy without it is redone
KEPT_STATE = "kept-state"  # kept-state/PROFILE: the copy before the last kept switch
REJECTED_STATE = "rejected-state"  # rejected-state/PROFILE: what a rolled-back release left
INTENT = "intent.json"
UNIT_COPY = "unit"
CONFIG_COPY = "config"
REPLACED_COPY = "replaced-unit"  # a product move: the unit file of the product it replaces
MEMORY_MODE = 0o700
FILE_MODE = 0o600
_MAX_BYTES = 256 * 1024


def memory_dir(home: Path) -> Path:
    """The spec user's reconciler state directory (XDG default under their home)."""
    return home / ".local" / "state" / "reconciler"


@recorded
@frozen
class BadVersion:
    """A version that failed its health check on one profile and was rolled back."""

    profile: str
    version: str
    failed_at: str  # ISO 8601 UTC
    reason: str

    def redacted(self, redaction: Redaction) -> BadVersion:
        return BadVersion(self.profile, self.version, self.failed_at, redaction.text(self.reason))

    def blocked_message(self) -> str:
        """The plan's reason for not trying it again."""
        return (
            f"{self.version} failed its health check at {self.failed_at} and was rolled back "
            f"({self.reason}); change the version or run "
            f"`reconciler update SPEC --retry {self.profile}`"
        )


@recorded
@frozen
class Interrupted:
    """A switch that started and never finished (its intent file is still there)."""

    profile: str
    from_version: str | None
    to_version: str
    started_at: str
    # A product move: the unit of the product it replaces (clawdbot-gateway-ops.service).
    replaces: str = ""


@frozen
class SwitchIntent:
    """`switch/PROFILE/intent.json`: a switch under way and the modes of the copies taken
    before it (None: there was no such file, so a rollback leaves none)."""

    from_version: str | None
    to_version: str
    started_at: str
    unit: str = ""
    unit_mode: int | None = None
    config_mode: int | None = None
    # A product move: the unit it replaces, and its file's mode when copied (REPLACED_COPY).
    replaces: str = ""
    replaced_mode: int | None = None

    def to_json(self) -> str:
        doc = {
            "from": self.from_version,
            "to": self.to_version,
            "started_at": self.started_at,
            "unit": self.unit,
            "unit_mode": self.unit_mode,
            "config_mode": self.config_mode,
        } | (
            {"replaces": self.replaces, "replaced_mode": self.replaced_mode}
            if self.replaces
            else {}
        )
        return json.dumps(doc, sort_keys=True) + "\n"

    @classmethod
    def parse(cls, text: str) -> SwitchIntent:
        """The intent in `text`; ValueError when it is not one we wrote (nesting bounded)."""
        doc = loads_json(text, source=INTENT, max_depth=4)
        try:
            return cls(
                _optional_text(doc.get("from")),
                str(doc["to"]),
                str(doc["started_at"]),
                str(doc.get("unit", "")),
                _optional_mode(doc.get("unit_mode")),
                _optional_mode(doc.get("config_mode")),
                str(doc.get("replaces", "")),
                _optional_mode(doc.get("replaced_mode")),
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"not a switch intent: {exc}") from None


def _optional_text(value: Any) -> str | None:
    return None if value is None else str(value)


def _optional_mode(value: Any) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 0o7777:
        raise TypeError(f"a mode must be 0..0o7777, not {value!r}")
    return value


@recorded
@frozen
class Switched:
    """The last switch of a profile that passed its health gate."""

    profile: str
    from_version: str
    to_version: str
    at: str


@recorded
@frozen
class FailedInstall:
    """An install of a version that failed, from a package.json with this digest."""

    version: str
    package_json_sha256: str
    failed_at: str  # ISO 8601 UTC
    reason: str

    def redacted(self, redaction: Redaction) -> FailedInstall:
        return replace(self, reason=redaction.text(self.reason))

    def blocked_message(self, package: str, profiles: tuple[str, ...]) -> str:
        """The plan's reason for not installing it again."""
        retry = " ".join(f"--retry {p}" for p in profiles) or "--retry PROFILE"
        return (
            f"{package}@{self.version} failed to install at {self.failed_at} "
            f"({self.reason}); not tried again until the spec changes what is installed "
            f"(the version, overrides, extra) or `reconciler update SPEC {retry}`"
        )


def package_digest(package_json: str) -> str:
    """What a failed install is remembered by: the package.json it was tried with."""
    return hashlib.sha256(package_json.encode()).hexdigest()


@recorded
@frozen
class SwitchMemory:
    """What the reconciler remembers of switches (and failed installs) on this host."""

    bad: tuple[BadVersion, ...] = ()
    interrupted: tuple[Interrupted, ...] = ()
    switched: tuple[Switched, ...] = ()
    failed_installs: tuple[FailedInstall, ...] = ()

    def failed_install(self, version: str, package_json: str) -> FailedInstall | None:
        """The record of `version` failing to install from exactly `package_json`."""
        digest = package_digest(package_json)
        return next(
            (
                f
                for f in self.failed_installs
                if f.version == version and f.package_json_sha256 == digest
            ),
            None,
        )

    def last_switch(self, profile: str) -> Switched | None:
        return next((s for s in self.switched if s.profile == profile), None)

    def bad_version(self, profile: str, version: str) -> BadVersion | None:
        """The mark on `version` for `profile`, if it is marked bad."""
        return next((b for b in self.bad if b.profile == profile and b.version == version), None)

    def interrupted_switch(self, profile: str) -> Interrupted | None:
        return next((i for i in self.interrupted if i.profile == profile), None)


def parse_bad_versions(text: str, where: str) -> tuple[BadVersion, ...]:
    """Pure: the marks of a `gateway-bad-versions.json`; ProbeFailed naming the file when it
    is not what we write."""
    try:
        doc = loads_json(text, source=where, max_depth=4) if text.strip() else {"profiles": {}}
        profiles = doc["profiles"]
        marks = tuple(
            BadVersion(
                str(name), str(e["version"]), str(e.get("failed_at", "")), str(e.get("reason", ""))
            )
            for name, e in sorted(profiles.items())
        )
    except (ValueError, KeyError, TypeError, AttributeError, OSError) as exc:
        raise ProbeFailed(
            f"{where}: not a bad-version record of the reconciler ({exc}): move it away "
            "(every version is then tried again)"
        ) from None
    return marks


def encode_bad_versions(marks: tuple[BadVersion, ...]) -> str:
    """Pure: the file's text for `marks` (one mark per profile, sorted)."""
    doc = {
        "profiles": {
            m.profile: {"version": m.version, "failed_at": m.failed_at, "reason": m.reason}
            for m in sorted(marks, key=lambda m: m.profile)
        }
    }
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"


def parse_switched(text: str) -> tuple[Switched, ...]:
    """Pure: the last kept switch per profile (an unreadable file: none, nothing depends on it
    but `rollback`'s default)."""
    try:
        profiles = loads_json(text, source=SWITCHED, max_depth=4)["profiles"]
        return tuple(
            Switched(str(name), str(e["from"]), str(e["to"]), str(e.get("at", "")))
            for name, e in sorted(profiles.items())
        )
    except (ValueError, KeyError, TypeError, AttributeError, OSError):
        return ()


def encode_switched(entries: tuple[Switched, ...]) -> str:
    doc = {
        "profiles": {
            s.profile: {"from": s.from_version, "to": s.to_version, "at": s.at}
            for s in sorted(entries, key=lambda s: s.profile)
        }
    }
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"


def parse_failed_installs(text: str) -> tuple[FailedInstall, ...]:
    """Pure: the failed installs remembered (an unreadable file: none, so installs are tried
    again, which is what happened before this memory existed)."""
    try:
        versions = loads_json(text, source=FAILED_INSTALLS, max_depth=4)["versions"]
        return tuple(
            FailedInstall(
                str(v), str(e["package_json_sha256"]), str(e["failed_at"]), str(e["reason"])
            )
            for v, e in sorted(versions.items())
        )
    except (ValueError, KeyError, TypeError, AttributeError, OSError):  # OSError: too deep
        return ()


def encode_failed_installs(entries: tuple[FailedInstall, ...]) -> str:
    """Pure: the file's text for `entries` (one per version, sorted)."""
    doc = {
        "versions": {
            f.version: {
                "package_json_sha256": f.package_json_sha256,
                "failed_at": f.failed_at,
                "reason": f.reason,
            }
            for f in sorted(entries, key=lambda f: f.version)
        }
    }
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"


def parse_intent(profile: str, text: str) -> Interrupted | None:
    """Pure: an intent file's switch, None when it is unreadable (then nothing is resumed)."""
    try:
        intent = SwitchIntent.parse(text)
    except ValueError:  # InputRefused (too deep) is an OSError
        return None
    except OSError:
        return None
    return Interrupted(
        profile, intent.from_version, intent.to_version, intent.started_at, intent.replaces
    )


def _read_memory(directory: Path) -> dict[str, Any]:
    """As the user: the raw texts (bad-version file, intent files), None where absent."""
    out: dict[str, Any] = {"bad": None, "intents": {}, "switched": None, "failed": None}
    with contextlib.suppress(OSError, UnicodeDecodeError):
        out["switched"] = read_bounded(directory / SWITCHED, _MAX_BYTES, follow=False).decode()
    with contextlib.suppress(OSError, UnicodeDecodeError):
        out["failed"] = read_bounded(directory / FAILED_INSTALLS, _MAX_BYTES, follow=False).decode()
    try:
        out["bad"] = read_bounded(directory / BAD_VERSIONS, _MAX_BYTES, follow=False).decode()
    except FileNotFoundError:
        pass
    except (OSError, UnicodeDecodeError) as exc:
        out["bad_error"] = str(exc)
    switch = directory / SWITCH_DIR
    try:
        names = sorted(p.name for p in switch.iterdir() if p.is_dir() and not p.is_symlink())
    except (FileNotFoundError, NotADirectoryError):
        names = []
    for name in names:
        try:
            out["intents"][name] = read_bounded(
                switch / name / INTENT, _MAX_BYTES, follow=False
            ).decode()
        except (OSError, UnicodeDecodeError):
            continue
    return out


@recorded
@frozen
class SwitchMemoryProbe(Probe[SwitchMemory]):
    """Reads the memory (in-process, with the spec user's permissions)."""

    directory: Path

    def read(self, host: HostContext) -> SwitchMemory:
        raw = call_as(acting_account(host), partial(_read_memory, self.directory))
        where = str(self.directory / BAD_VERSIONS)
        if raw.get("bad_error"):
            raise ProbeFailed(f"{where}: {raw['bad_error']}")
        bad = parse_bad_versions(raw["bad"], where) if raw["bad"] is not None else ()
        interrupted = tuple(
            i
            for name, text in sorted(raw["intents"].items())
            if (i := parse_intent(name, text)) is not None
        )
        switched = parse_switched(raw["switched"]) if raw.get("switched") else ()
        failed = parse_failed_installs(raw["failed"]) if raw.get("failed") else ()
        return SwitchMemory(bad, interrupted, switched, failed)

    def answer_from(self, recorded: RecordedHost) -> SwitchMemory | None:
        """Nothing remembered when the directory is known to be absent, or when the snapshot
        was recorded before this fact existed (it holds none at all)."""
        if recorded.known_missing(self.directory) or not recorded.facts_of(SwitchMemory):
            return SwitchMemory()
        return None

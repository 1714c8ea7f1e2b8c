"""Device pairing of one gateway profile: pending requests and paired devices.

docs/host-facts.md §1, §10: a browser that is not yet paired gets `Disconnected (1008): pairing
required` and a pending request in `<state>/devices/pending.json` (an object keyed by request
id), which the gateway prunes 5 minutes after its `ts`. Approved devices are in `paired.json`
(keyed by device id). `<cmd> devices list --json` prints `{"pending": [...], "paired": [...]}`
(pending newest first; paired without their tokens, src/gateway/server-methods/devices.ts).
Paired entries in the file hold device tokens: only the fields below are ever kept.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from reconciler.core.command import Command, CommandResult
from reconciler.core.host import HostContext
from reconciler.core.probe import Probe, ProbeFailed
from reconciler.facts.codec import recorded
from reconciler.facts.gateway_rpc import GatewayCall
from reconciler.frozen import frozen
from reconciler.gateway.paths import profile_paths

if TYPE_CHECKING:
    from reconciler.spec.model import Profile, Spec

PENDING_TTL_MS = 5 * 60 * 1000  # src/infra/device-pairing.ts PENDING_TTL_MS
MAX_FILE_BYTES = 4 * 1024 * 1024

PairingSource = Literal["gateway", "files", "unavailable"]


def devices_dir(spec: Spec, host: HostContext, profile: Profile) -> Path:
    """`<state>/devices` of `profile`: pending.json and paired.json."""
    return profile_paths(spec, profile, host).state / "devices"


@recorded
@frozen
class PendingRequest:
    """A device waiting for approval."""

    request_id: str
    device_id: str
    ts_ms: int
    display_name: str = ""
    platform: str = ""
    client_id: str = ""
    client_mode: str = ""
    role: str = ""
    remote_ip: str = ""
    is_repair: bool = False

    def client(self) -> str:
        """What to call it: its display name, else its client id, else its device id."""
        return self.display_name or self.client_id or self.device_id[:16]

    def remaining_ms(self, now_ms: int) -> int:
        """Time left before the gateway drops it (negative: expired)."""
        return self.ts_ms + PENDING_TTL_MS - now_ms


@recorded
@frozen
class PairedDevice:
    """An approved device (its tokens are never read into this)."""

    device_id: str
    display_name: str = ""
    platform: str = ""
    client_id: str = ""
    roles: tuple[str, ...] = ()
    remote_ip: str = ""
    approved_ms: int | None = None


@recorded
@frozen
class DevicePairing:
    """Pending requests and paired devices, and where they were read from."""

    source: PairingSource
    pending: tuple[PendingRequest, ...] = ()
    paired: tuple[PairedDevice, ...] = ()
    detail: str = ""  # why the source is not the gateway, or what failed


def _text(entry: dict[str, Any], key: str) -> str:
    value = entry.get(key)
    return value if isinstance(value, str) else ""


def pending_request(entry: Any) -> PendingRequest:
    """One pending entry (CLI or file) -> PendingRequest; ValueError when it is not one."""
    if not isinstance(entry, dict) or not isinstance(entry.get("requestId"), str):
        raise ValueError(f"not a pending pairing request: {str(entry)[:80]!r}")
    ts = entry.get("ts")
    return PendingRequest(
        request_id=entry["requestId"],
        device_id=_text(entry, "deviceId"),
        ts_ms=int(ts) if isinstance(ts, int | float) else 0,
        display_name=_text(entry, "displayName"),
        platform=_text(entry, "platform"),
        client_id=_text(entry, "clientId"),
        client_mode=_text(entry, "clientMode"),
        role=_text(entry, "role"),
        remote_ip=_text(entry, "remoteIp"),
        is_repair=entry.get("isRepair") is True,
    )


def paired_device(entry: Any) -> PairedDevice:
    """One paired entry -> PairedDevice (roles from `roles`, else `role`)."""
    if not isinstance(entry, dict) or not isinstance(entry.get("deviceId"), str):
        raise ValueError(f"not a paired device: {str(entry)[:80]!r}")
    roles = entry.get("roles")
    if not isinstance(roles, list):
        roles = [entry["role"]] if isinstance(entry.get("role"), str) else []
    approved = entry.get("approvedAtMs")
    return PairedDevice(
        device_id=entry["deviceId"],
        display_name=_text(entry, "displayName"),
        platform=_text(entry, "platform"),
        client_id=_text(entry, "clientId"),
        roles=tuple(r for r in roles if isinstance(r, str)),
        remote_ip=_text(entry, "remoteIp"),
        approved_ms=int(approved) if isinstance(approved, int | float) else None,
    )


def parse_pairing_list(doc: Any) -> DevicePairing:
    """`devices list --json` -> DevicePairing (pending newest first, as the gateway sorts)."""
    if not isinstance(doc, dict):
        raise ProbeFailed("devices list --json did not print an object")
    pending = [pending_request(e) for e in doc.get("pending") or []]
    paired = [paired_device(e) for e in doc.get("paired") or []]
    return DevicePairing(
        "gateway",
        tuple(sorted(pending, key=lambda r: -r.ts_ms)),
        tuple(paired),
    )


def pairing_from_files(
    pending_doc: Any, paired_doc: Any, now_ms: int, detail: str = ""
) -> DevicePairing:
    """pending.json and paired.json (objects keyed by id; None: no file) -> DevicePairing.

    Expired requests are left out, as the gateway prunes them on every read.
    """
    pending = [pending_request(e) for e in (pending_doc or {}).values()]
    live = [r for r in pending if r.remaining_ms(now_ms) > 0]
    paired = [paired_device(e) for e in (paired_doc or {}).values()]
    return DevicePairing(
        "files",
        tuple(sorted(live, key=lambda r: -r.ts_ms)),
        tuple(sorted(paired, key=lambda d: -(d.approved_ms or 0))),
        detail,
    )


@recorded
@frozen
class DevicesListProbe(Probe[DevicePairing]):
    """`<cmd> devices list --json` against the profile's gateway, as the user."""

    program: str
    port: int
    env: tuple[tuple[str, str], ...]
    token_file: Path | None = None

    def command(self, host: HostContext) -> Command:
        call = GatewayCall(self.program, self.port, self.env, self.token_file)
        return call.command("devices", "list", "--json", timeout_s=20)

    def parse(self, result: CommandResult) -> DevicePairing:
        if not result.ok:
            return DevicePairing("unavailable", detail=result.summary())
        start = result.stdout.find("{")
        try:
            doc = json.loads(result.stdout[start:]) if start != -1 else None
        except json.JSONDecodeError as exc:
            return DevicePairing("unavailable", detail=f"devices list printed no JSON: {exc}")
        return parse_pairing_list(doc)


@recorded
@frozen
class DeviceFilesProbe(Probe[DevicePairing]):
    """`<state>/devices/{pending,paired}.json`, read in-process: only regular files owned by
    the spec's user, never through a symlink (as root we must not read what a link points to)."""

    devices_dir: Path
    now_ms: int  # the gateway's expiry is relative to now: part of what was asked

    def read(self, host: HostContext) -> DevicePairing:
        uid = host.user.uid if host.user is not None else None
        pending = _read_owned_json(self.devices_dir / "pending.json", uid)
        paired = _read_owned_json(self.devices_dir / "paired.json", uid)
        return pairing_from_files(pending, paired, self.now_ms, f"read from {self.devices_dir}")


def _read_owned_json(path: Path, uid: int | None) -> Any:
    """The JSON in `path`, None when there is no such file; ProbeFailed when it is not a
    regular file of `uid` or not JSON."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ProbeFailed(f"{path}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode) or (uid is not None and info.st_uid != uid):
            raise ProbeFailed(f"{path}: not a regular file owned by the gateway's user; not read")
        data = handle.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise ProbeFailed(f"{path}: larger than {MAX_FILE_BYTES} bytes; not read")
    try:
        return json.loads(data)
    except json.JSONDecodeError as exc:
        raise ProbeFailed(f"{path}: not JSON ({exc})") from None

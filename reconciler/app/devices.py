"""`reconciler devices SPEC PROFILE [approve ID]`: pairing requests of one gateway profile.

Listing asks the gateway (`<cmd> devices list --json`, as the user with the profile's
environment); when it does not answer, the profile's `devices/*.json` files say the same. Approving
always goes through the gateway's own CLI (`devices approve ID`): nothing here writes the files,
and nothing is ever approved without being asked for by ID.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from reconciler.app.context import EXIT_OK, AppContext, Failed
from reconciler.app.specs import load
from reconciler.core.untrusted import printable, shell_line
from reconciler.frozen import frozen

if TYPE_CHECKING:
    from reconciler.core.host import HostContext
    from reconciler.facts.devices import DevicePairing, PendingRequest
    from reconciler.facts.gateway_rpc import GatewayCall
    from reconciler.spec.model import Profile, Spec

DevicesFormat = Literal["human", "json"]


@frozen
class DevicesRequest:
    """What `reconciler devices` was asked for (`approve` None: list)."""

    spec_path: Path
    profile: str
    approve: str | None = None
    fmt: DevicesFormat = "human"
    host_check: bool = True


def devices(ctx: AppContext, request: DevicesRequest) -> int:
    """List the profile's pending and paired devices, or approve one request by its ID."""
    spec = load(ctx, request.spec_path)
    profile, host = _profile_and_host(ctx, spec, request)
    if request.approve is not None:
        return approve(ctx, spec, host, profile, request.approve)
    pairing = read_pairing(ctx, spec, host, profile)
    now_ms = int(ctx.now().timestamp() * 1000)
    if request.fmt == "json":
        ctx.echo(render_json(pairing, now_ms))
    else:
        ctx.echo(render_human(pairing, now_ms, approve_hint(request.spec_path, profile)), nl=False)
    return EXIT_OK


def _profile_and_host(
    ctx: AppContext, spec: Spec, request: DevicesRequest
) -> tuple[Profile, HostContext]:
    from reconciler.app.planning import host_for
    from reconciler.app.specs import profile_named

    profile = profile_named(spec, request.spec_path, request.profile)
    host = host_for(ctx, spec, request.host_check)
    if host.user is None:
        raise Failed(f"user {spec.host.user!r} does not exist on this host")
    if not host.can_act_for_user:
        raise Failed(
            f"the gateway runs as {spec.host.user}: run this as {spec.host.user} or as root "
            f"(we are {host.invoker.name})"
        )
    return profile, host


def _call(spec: Spec, host: HostContext, profile: Profile) -> GatewayCall:
    from reconciler.facts.gateway_rpc import gateway_call

    call = gateway_call(spec, host, profile)
    if call is None:
        raise Failed(
            f"the gateway CLI ({spec.runtime.gateway.command or spec.product}) is not installed "
            f"for {spec.host.user}; install it with: reconciler apply {spec.path}"
        )
    return call


def read_pairing(ctx: AppContext, spec: Spec, host: HostContext, profile: Profile) -> DevicePairing:
    """The gateway's answer; its files when it does not answer (both asked at once)."""
    from dataclasses import replace

    from reconciler.core.probe import ProbeFailed, ProbeSession
    from reconciler.facts.devices import DeviceFilesProbe, DevicesListProbe, devices_dir

    call = _call(spec, host, profile)
    listing = DevicesListProbe(call.program, call.port, call.env, call.token_file)
    files = DeviceFilesProbe(devices_dir(spec, host, profile), int(ctx.now().timestamp() * 1000))
    facts = ProbeSession(host, ctx.make_runner(host, False).run).collect([listing, files])
    answer = facts.get(listing)
    if answer.source == "gateway":
        return answer
    try:
        found = facts.get(files)
    except ProbeFailed as exc:  # the files exist but cannot be trusted
        raise Failed(f"the gateway did not answer ({answer.detail}) and {exc}") from None
    return replace(found, detail=f"the gateway did not answer ({answer.detail}); {found.detail}")


def approve_hint(spec_path: Path, profile: Profile) -> str:
    """The command that approves a request of `profile` (ID left to fill in)."""
    return shell_line(("reconciler", "devices", str(spec_path), profile.name, "approve"))


def approve(
    ctx: AppContext, spec: Spec, host: HostContext, profile: Profile, request_id: str
) -> int:
    """`<cmd> devices approve ID` through the gateway, as the user, with the profile's env.

    An ID starting with `-` is refused before anything runs: the gateway's CLI would read it as
    an option (issue 22: `approve -- --help`)."""
    from reconciler.facts.gateway_rpc import failure_reason

    listing = shell_line(("reconciler", "devices", str(spec.path), profile.name))
    if request_id.startswith("-") or not request_id.strip() or not request_id.isprintable():
        raise Failed(
            f"{printable(request_id)!r} is not a pairing request ID (they never start with `-` "
            f"or hold control characters); list the pending requests with: {listing}"
        )
    call = _call(spec, host, profile)
    runner = ctx.make_runner(host, True)
    result = runner.run(call.command("devices", "approve", request_id, mutating=True))
    if not result.ok:
        raise Failed(
            f"approving {request_id} for profile {profile.name} failed: "
            f"{printable(failure_reason(result))} (list the pending requests with: {listing})"
        )
    ctx.echo(printable(result.stdout.strip()) or f"Approved {request_id}")
    return EXIT_OK


def _ago(ms: int) -> str:
    seconds = max(0, ms // 1000)
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h"


def _left(request: PendingRequest, now_ms: int) -> str:
    left = request.remaining_ms(now_ms)
    if left <= 0:
        return "expired"
    seconds = left // 1000
    return f"{seconds // 60}m{seconds % 60:02d}s"


def render_human(pairing: DevicePairing, now_ms: int, hint: str) -> str:
    """Pending requests (age, client, platform, time left) and paired devices, as text."""
    lines: list[str] = []
    if pairing.detail:
        lines.append(f"note: {printable(pairing.detail)}")
    p = printable  # every field below is the browser's (or the gateway's) to choose
    lines.append(f"Pending ({len(pairing.pending)}):")
    for r in pairing.pending:
        repair = " (repair)" if r.is_repair else ""
        lines.append(
            f"  {p(r.request_id)}  {p(r.client())}  {p(r.platform or '?')}  {p(r.role or '?')}  "
            f"{p(r.remote_ip or '?')}  {_ago(now_ms - r.ts_ms)} ago, expires in "
            f"{_left(r, now_ms)}{repair}"
        )
    if pairing.pending:
        lines.append(f"  approve one with: {hint} REQUEST_ID")
    lines.append(f"Paired ({len(pairing.paired)}):")
    for d in pairing.paired:
        when = (
            datetime.fromtimestamp(d.approved_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")
            if d.approved_ms
            else "?"
        )
        name = d.display_name or d.client_id or d.device_id[:16]
        lines.append(
            f"  {p(name)}  {p(d.platform or '?')}  {p(','.join(d.roles) or '?')}  "
            f"{p(d.remote_ip or '?')}  approved {when}"
        )
    return "\n".join(lines) + "\n"


def render_json(pairing: DevicePairing, now_ms: int) -> str:
    """The same as a JSON document (no tokens: they are never read)."""
    doc = {
        "source": pairing.source,
        "detail": pairing.detail,
        "pending": [
            {
                "requestId": r.request_id,
                "deviceId": r.device_id,
                "client": r.client(),
                "platform": r.platform,
                "role": r.role,
                "remoteIp": r.remote_ip,
                "ageSeconds": max(0, (now_ms - r.ts_ms) // 1000),
                "expiresInSeconds": max(0, r.remaining_ms(now_ms) // 1000),
            }
            for r in pairing.pending
        ],
        "paired": [
            {
                "deviceId": d.device_id,
                "name": d.display_name or d.client_id,
                "platform": d.platform,
                "roles": list(d.roles),
                "remoteIp": d.remote_ip,
                "approvedAtMs": d.approved_ms,
            }
            for d in pairing.paired
        ],
    }
    return json.dumps(doc, indent=2)

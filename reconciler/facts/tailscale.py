"""Tailscale facts: `tailscale status --json`, `serve status --json`, `debug prefs` (docs/host-facts.md §2)."""

from __future__ import annotations

import copy
import json
from dataclasses import field, replace
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from reconciler.core.command import Command, CommandResult
from reconciler.core.host import HostContext
from reconciler.core.probe import Probe, ProbeFailed
from reconciler.facts.codec import Redaction, Wanted, recorded, records
from reconciler.frozen import frozen

if TYPE_CHECKING:
    from reconciler.spec.model import Spec

# `status` says "failed to connect to local tailscaled; ...", the LocalAPI client of `serve`,
# `debug prefs` and `set` says "Failed to connect to local Tailscale daemon for /localapi/...".
DAEMON_DOWN = "failed to connect to local tailscale"

Reachability = Literal["ok", "not-installed", "daemon-down", "error"]


def _unreachable(result: CommandResult) -> tuple[Reachability, str] | None:
    """Classify a failed tailscale call; None when it answered."""
    if result.not_found:
        return "not-installed", "tailscale: not installed"
    if result.exit_code is None:
        return "error", f"tailscale: {result.error}"
    if DAEMON_DOWN in (result.stderr + result.stdout).lower():
        return "daemon-down", "tailscaled: not running"
    if result.exit_code != 0:
        return "error", f"tailscale: {result.summary()}"
    return None


@recorded
@frozen
class TailscaleStatus:
    """The node as `tailscale status --json` shows it."""

    reachability: Reachability
    detail: str = ""
    backend_state: str | None = None
    dns_name: str | None = None  # without the trailing dot
    https_enabled: bool = False

    def serve_blocker(self) -> str | None:
        """Why serve entries cannot be written now, or None when they can."""
        if self.reachability != "ok":
            return self.detail
        if self.backend_state != "Running":
            return f"tailscale BackendState {self.backend_state} (run `tailscale up` and log in)"
        if not self.https_enabled:
            return (
                "HTTPS certificates are not enabled on this tailnet (Self.CapMap has no "
                '"https"): enable HTTPS in the admin console, DNS page'
            )
        if not self.dns_name:
            return "tailscale reports no DNSName for this node (MagicDNS off?)"
        return None


@recorded
@frozen
class TailscaleStatusProbe(Probe[TailscaleStatus]):
    def command(self, host: HostContext) -> Command:
        return Command(("tailscale", "status", "--json"), timeout_s=15)

    def parse(self, result: CommandResult) -> TailscaleStatus:
        failure = _unreachable(result)
        if failure:
            return TailscaleStatus(*failure)
        doc = _json(result.stdout, "tailscale status --json")
        if not isinstance(doc, dict):
            raise ProbeFailed("tailscale status --json did not print an object")
        me = doc.get("Self") or {}
        cap_map = me.get("CapMap") or {}
        capabilities = me.get("Capabilities") or []
        dns = (me.get("DNSName") or "").rstrip(".") or None
        return TailscaleStatus(
            reachability="ok",
            detail=f"BackendState {doc.get('BackendState')}",
            backend_state=doc.get("BackendState"),
            dns_name=dns,
            https_enabled="https" in cap_map or "https" in capabilities,
        )


@recorded
@frozen
class TailscalePrefs:
    reachability: Reachability
    detail: str = ""
    operator: str | None = None


@recorded
@frozen
class TailscalePrefsProbe(Probe[TailscalePrefs]):
    def command(self, host: HostContext) -> Command:
        return Command(("tailscale", "debug", "prefs"), timeout_s=15)

    def parse(self, result: CommandResult) -> TailscalePrefs:
        failure = _unreachable(result)
        if failure:
            return TailscalePrefs(*failure)
        doc = _json(result.stdout, "tailscale debug prefs")
        if not isinstance(doc, dict):
            raise ProbeFailed("tailscale debug prefs did not print an object")
        return TailscalePrefs("ok", operator=doc.get("OperatorUser") or None)


@recorded
@frozen
class WebMount:
    """The handlers of one node-level web serve (`host:port`)."""

    host: str
    port: int
    handlers: dict[str, dict[str, Any]]

    def root_proxy(self) -> str | None:
        handler = self.handlers.get("/")
        return handler.get("Proxy") if handler else None

    def redacted(self, redaction: Redaction) -> WebMount:
        """Handler strings (a proxy URL may carry credentials) masked in snapshots."""
        handlers = copy.deepcopy(self.handlers)
        for handler in handlers.values():
            for key, item in handler.items():
                if isinstance(item, str):
                    handler[key] = redaction.text(item)
        return replace(self, handlers=handlers)


@recorded
@frozen
class ServeConfig:
    """`tailscale serve status --json`, split into what we may own and what we never touch."""

    reachability: Reachability
    detail: str = ""
    web: tuple[WebMount, ...] = ()
    tcp: dict[int, dict[str, Any]] = field(default_factory=dict)
    funnel: tuple[str, ...] = ()  # "host:port" with AllowFunnel true at top level
    foreground_funnel: tuple[str, ...] = ()  # the same inside Foreground sessions
    foreground_sessions: tuple[str, ...] = ()
    services: tuple[str, ...] = ()

    def mount(self, host: str, port: int) -> WebMount | None:
        return next((m for m in self.web if m.host == host and m.port == port), None)

    def redacted(self, redaction: Redaction) -> ServeConfig:
        return replace(self, web=tuple(m.redacted(redaction) for m in self.web))


@recorded
@frozen
class ServeStatusProbe(Probe[ServeConfig]):
    def command(self, host: HostContext) -> Command:
        return Command(("tailscale", "serve", "status", "--json"), timeout_s=15)

    def parse(self, result: CommandResult) -> ServeConfig:
        failure = _unreachable(result)
        if failure:
            return ServeConfig(*failure)
        return parse_serve_config(_json(result.stdout, "tailscale serve status --json"))


def parse_serve_config(doc: Any) -> ServeConfig:
    """Pure parser of a ServeConfig document (`null` and `{}` both mean empty)."""
    if doc is None:
        return ServeConfig("ok")
    if not isinstance(doc, dict):
        raise ProbeFailed("tailscale serve status --json did not print an object")
    web: list[WebMount] = []
    for hostport, entry in sorted((doc.get("Web") or {}).items()):
        host, _, port = hostport.rpartition(":")
        web.append(WebMount(host, int(port), dict((entry or {}).get("Handlers") or {})))
    tcp = {int(port): dict(v or {}) for port, v in (doc.get("TCP") or {}).items()}
    funnel = tuple(sorted(k for k, v in (doc.get("AllowFunnel") or {}).items() if v))
    foreground = doc.get("Foreground") or {}
    fg_funnel = sorted(
        k
        for session in foreground.values()
        for k, v in ((session or {}).get("AllowFunnel") or {}).items()
        if v
    )
    return ServeConfig(
        "ok",
        web=tuple(web),
        tcp=tcp,
        funnel=funnel,
        foreground_funnel=tuple(fg_funnel),
        foreground_sessions=tuple(sorted(foreground)),
        services=tuple(sorted(doc.get("Services") or {})),
    )


@records
def _any_spec_may_ask(spec: Spec, host: HostContext) -> Wanted:
    """Tailscale's state is recorded whatever this spec asks: a later spec may serve."""
    return Wanted(probes=(TailscaleStatusProbe(), ServeStatusProbe(), TailscalePrefsProbe()))


def normalize_target(target: str) -> str:
    """The form tailscale stores a proxy target in: `18789` -> `http://127.0.0.1:18789`.

    `localhost` stays `localhost`: tailscale keeps it, and it may resolve to ::1, so it is not
    silently equal to 127.0.0.1.
    """
    text = target.strip()
    if text.isdigit():
        return f"http://127.0.0.1:{int(text)}"
    if "://" not in text:
        text = "http://" + text
    parts = urlsplit(text)
    netloc = parts.netloc
    path = parts.path if parts.path not in ("", "/") else ""
    return f"{parts.scheme}://{netloc}{path}"


def _json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ProbeFailed(f"{what} printed something that is not JSON: {exc}") from exc

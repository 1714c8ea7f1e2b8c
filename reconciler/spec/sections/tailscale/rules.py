"""The `tailscale:` section's semantic rules: the operator's name, each serve entry's target, one
entry per HTTPS port, and the funnel guard (public exposure only where the spec allows it, and
only on the ports Funnel listens on)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from reconciler.spec.rules import Issue, Rule, as_int, did_you_mean, get, profiles, user_name
from reconciler.spec.schema import pattern
from reconciler.spec.yaml_source import Document, show

FUNNEL_PORTS = (443, 8443, 10000)  # the only ports Tailscale Funnel listens on
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def _serve(doc: Document) -> list[tuple[int, dict[str, Any]]]:
    serve = get(doc.data, "tailscale", "serve")
    if not isinstance(serve, list):
        return []
    return [(i, entry) for i, entry in enumerate(serve) if isinstance(entry, dict)]


def operator_name(doc: Document) -> Iterator[Issue]:
    """tailscale.operator is a POSIX user name (it goes into `tailscale set --operator=`)."""
    yield from user_name(doc, ("tailscale", "operator"))


def serve_profile_or_target(doc: Document) -> Iterator[Issue]:
    """Each serve entry names exactly one of a profile or a target."""
    for i, entry in _serve(doc):
        has_profile, has_target = "profile" in entry, "target" in entry
        if has_profile == has_target:
            what = "both profile and target" if has_profile else "neither profile nor target"
            yield Issue(
                ("tailscale", "serve", i),
                f"a serve entry needs exactly one of profile or target, this one has {what}",
                "profile: NAME proxies to that profile's gateway; target: http://127.0.0.1:PORT "
                "proxies to another local service",
            )


def serve_profile_exists(doc: Document) -> Iterator[Issue]:
    """A serve entry's profile is defined under profiles."""
    defined = profiles(doc)
    if not defined:
        return
    for i, entry in _serve(doc):
        name = entry.get("profile")
        if isinstance(name, str) and name not in defined:
            hint = did_you_mean(name, defined) or "defined profiles: " + ", ".join(
                f"`{p}`" for p in defined
            )
            yield Issue(
                ("tailscale", "serve", i, "profile"), f"no profile named {show(name)}", hint
            )


def serve_target_loopback(doc: Document) -> Iterator[Issue]:
    """A serve entry's explicit target is an http(s) URL on loopback with a port."""
    regex = re.compile(pattern("loopbackUrl"))
    example = "e.g. http://127.0.0.1:3000"
    for i, entry in _serve(doc):
        target = entry.get("target")
        if not isinstance(target, str):
            continue
        path = ("tailscale", "serve", i, "target")
        try:
            url = urlsplit(target)
            port = url.port
        except ValueError:
            url, port = None, None
        if url is None or url.scheme not in ("http", "https"):
            yield Issue(path, f"{show(target)} is not an http:// or https:// URL", example)
        elif url.hostname not in LOOPBACK_HOSTS:
            yield Issue(
                path,
                f"{show(target)} is not a loopback URL",
                "serve targets must be on 127.0.0.1, localhost or [::1] "
                "(to serve a gateway, name its profile instead)",
            )
        elif port is None:
            yield Issue(
                path, f"{show(target)} has no port", f"write the port explicitly, {example}"
            )
        elif not 1 <= port <= 65535:
            yield Issue(path, f"port {port} of {show(target)} is out of range", example)
        elif not regex.fullmatch(target):
            yield Issue(
                path,
                f"{show(target)} is not of the form http(s)://HOST:PORT[/path]",
                f"{example} (no user, query or fragment)",
            )


def unique_serve_ports(doc: Document) -> Iterator[Issue]:
    """No two serve entries share an HTTPS port."""
    seen: dict[int, int] = {}
    for i, entry in _serve(doc):
        port = as_int(entry.get("https"))
        if port is None:
            continue
        if port in seen:
            yield Issue(
                ("tailscale", "serve", i, "https"),
                f"HTTPS port {port} is already used by tailscale.serve[{seen[port]}]",
                "one serve entry per HTTPS port",
            )
        else:
            seen[port] = i


def funnel_policy(doc: Document) -> Iterator[Issue]:
    """funnel: true on an entry needs tailscale.funnel: allow."""
    policy = get(doc.data, "tailscale", "funnel")
    if policy == "allow":
        return
    for i, entry in _serve(doc):
        if entry.get("funnel") is True:
            yield Issue(
                ("tailscale", "serve", i, "funnel"),
                "funnel: true (public exposure) is not allowed while tailscale.funnel is "
                f"{policy if isinstance(policy, str) else 'deny'}",
                "set tailscale.funnel: allow to permit public entries, or remove funnel: true",
            )


def funnel_ports(doc: Document) -> Iterator[Issue]:
    """Tailscale Funnel only listens on a few ports."""
    for i, entry in _serve(doc):
        port = as_int(entry.get("https"))
        if entry.get("funnel") is True and port is not None and port not in FUNNEL_PORTS:
            yield Issue(
                ("tailscale", "serve", i, "https"),
                f"Tailscale Funnel cannot listen on port {port}",
                "Funnel only listens on ports "
                + ", ".join(map(str, FUNNEL_PORTS[:-1]))
                + f" and {FUNNEL_PORTS[-1]}",
            )


RULES: tuple[Rule, ...] = (
    operator_name,
    serve_profile_or_target,
    serve_profile_exists,
    serve_target_loopback,
    unique_serve_ports,
    funnel_policy,
    funnel_ports,
)

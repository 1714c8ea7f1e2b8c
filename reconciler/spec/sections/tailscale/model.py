"""The `tailscale:` section's model: the operator, node-level serve entries, the funnel policy."""

from __future__ import annotations

from typing import Any, Literal

from reconciler.frozen import frozen

# Where the section is, in the document and in the typed Spec (the same names).
MOUNT = ("tailscale",)

FunnelPolicy = Literal["deny", "allow"]


@frozen
class ServeEntry:
    """One node-level Tailscale Serve mount: HTTPS port -> a profile's gateway or a loopback URL."""

    https: int
    profile: str | None = None
    target: str | None = None  # explicit loopback target, e.g. "http://127.0.0.1:3000"
    funnel: bool = False  # public exposure; only valid with tailscale.funnel = allow


@frozen
class Tailscale:
    """What the spec owns of Tailscale: the operator, serve entries, and the funnel policy."""

    operator: str | None = None  # None: leave the operator alone
    funnel: FunnelPolicy = "deny"
    serve: tuple[ServeEntry, ...] = ()
    prune: bool = False  # remove node-level serve entries the spec does not list


def _some(section: dict[str, Any], *names: str) -> dict[str, Any]:
    """The fields of `section` that are present: absent ones keep the dataclass defaults."""
    return {name: section[name] for name in names if name in section}


def build(section: dict[str, Any]) -> Tailscale:
    """Validated `tailscale:` data -> Tailscale."""
    serve = tuple(
        ServeEntry(https=int(entry["https"]), **_some(entry, "profile", "target", "funnel"))
        for entry in section.get("serve", [])
    )
    return Tailscale(serve=serve, **_some(section, "operator", "funnel", "prune"))

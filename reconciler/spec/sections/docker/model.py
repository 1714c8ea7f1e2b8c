"""The `runtime.docker` section's model: docker for the gateway's sandbox.

Written as a word (the policy alone: `docker: required`) or as a mapping with the policy, how
the spec's user reaches docker, and the sandbox settings the spec owns in every profile's
gateway config (`agents.defaults.sandbox.*`, keys of the gateway's own config schema: it
refuses unknown keys, so only these three are ever written).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import field
from typing import Any, Literal

from reconciler.frozen import frozen

# Where the section is in the document, and in the typed Spec (the same names).
MOUNT = ("runtime", "docker")

DockerPolicy = Literal["required", "optional", "absent"]
DockerAccess = Literal["group", "rootless"]
SandboxMode = Literal["off", "non-main", "all"]
SandboxScope = Literal["session", "agent", "shared"]
WorkspaceAccess = Literal["none", "ro", "rw"]

# The spec's field -> the gateway config key it owns (agents.defaults.sandbox in the gateway's
# zod schema, clawdbot 2026.1.24 and openclaw alike).
SANDBOX_KEYS: dict[str, tuple[str, ...]] = {
    "mode": ("agents", "defaults", "sandbox", "mode"),
    "scope": ("agents", "defaults", "sandbox", "scope"),
    "workspace_access": ("agents", "defaults", "sandbox", "workspaceAccess"),
}
GATEWAY_CONFIG_PATHS: tuple[tuple[str, ...], ...] = tuple(SANDBOX_KEYS.values())


@frozen
class Sandbox:
    """The gateway's tool sandbox settings the spec owns (None: left as the config has it)."""

    mode: SandboxMode | None = None
    scope: SandboxScope | None = None
    workspace_access: WorkspaceAccess | None = None


@frozen
class Docker:
    """Whether the spec's user must reach a docker daemon (required), must not (absent), or
    either is fine (optional: the daemon is not even asked); how (the `docker` group, or the
    user's own rootless daemon); and the sandbox settings of every profile's gateway."""

    policy: DockerPolicy = "optional"
    access: DockerAccess = "group"
    sandbox: Sandbox = field(default_factory=Sandbox)

    def gateway_config(self) -> Mapping[tuple[str, ...], Any]:
        """The gateway config keys this section wants, with their values (set ones only)."""
        return {
            path: getattr(self.sandbox, name)
            for name, path in SANDBOX_KEYS.items()
            if getattr(self.sandbox, name) is not None
        }


def build(section: str | dict[str, Any] | None) -> Docker:
    """Validated `runtime.docker` data (absent, a word, or a mapping) -> Docker."""
    if section is None:
        return Docker()
    if isinstance(section, str):
        return Docker(policy=section)  # type: ignore[arg-type]
    fields = {k: section[k] for k in ("policy", "access") if k in section}
    return Docker(sandbox=Sandbox(**section.get("sandbox", {})), **fields)

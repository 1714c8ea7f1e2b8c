"""The `runtime.docker` section's model: docker for the gateway's sandbox."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

DockerPolicy = Literal["required", "optional", "absent"]


# Where the section is in the document, and in the typed Spec (the same names).
MOUNT = ("runtime", "docker")


@dataclass(frozen=True)
class Docker:
    """Whether the spec's user must reach a docker daemon (required), must not (absent), or
    either is fine (optional: the daemon is not even asked)."""

    policy: DockerPolicy = "optional"


def build(section: str | None) -> Docker:
    """Validated `runtime.docker` data -> Docker."""
    return Docker() if section is None else Docker(policy=section)  # type: ignore[arg-type]

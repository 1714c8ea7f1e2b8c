"""Where a plan comes from: the spec file, the host, who planned, when, and from what state."""

from __future__ import annotations

from typing import Literal

from reconciler.core.host import HostContext
from reconciler.frozen import frozen
from reconciler.spec.model import Spec

SourceType = Literal["host", "snapshot"]


@frozen
class SnapshotSource:
    """A snapshot file the plan was made against (instead of probing the host)."""

    path: str
    sha256: str
    recorded_at: str


@frozen
class PlanContext:
    """What every plan format states besides the plan: spec, host, invoker, time, source."""

    spec_path: str | None
    spec_sha256: str | None
    host_name: str  # the spec's host.name
    hostname: str  # the machine's hostname as probed (or as the snapshot recorded it)
    user: str  # the spec's user
    invoker: str  # who probed: a plan made as root differs from one made as the user
    probed_at: str  # ISO 8601, UTC
    snapshot: SnapshotSource | None = None

    @property
    def source(self) -> SourceType:
        return "host" if self.snapshot is None else "snapshot"

    def title(self) -> str:
        """`Plan for vm102 (user user) from specs/vm102.yaml:` (plus the snapshot, if any)."""
        against = ""
        if self.snapshot is not None:
            # A remote plan is made from the facts its target just sent (docs/remote.md).
            remote = self.snapshot.path.startswith("ssh://")
            against = f", {'probed over' if remote else 'against snapshot'} {self.snapshot.path}"
        return (
            f"Plan for {self.host_name} (user {self.user}) from {self.spec_path or 'the spec'}"
            f"{against}:"
        )


def plan_context(
    spec: Spec, host: HostContext, probed_at: str, snapshot: SnapshotSource | None = None
) -> PlanContext:
    """The context of a plan of `spec` made on (or for) `host`."""
    return PlanContext(
        spec_path=str(spec.path) if spec.path is not None else None,
        spec_sha256=spec.sha256,
        host_name=spec.host.name,
        hostname=host.hostname,
        user=spec.host.user,
        invoker=host.invoker.name,
        probed_at=probed_at,
        snapshot=snapshot,
    )

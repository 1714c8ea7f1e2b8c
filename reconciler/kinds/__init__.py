"""Every resource kind, in the order their actions are listed when nothing else orders them."""

from __future__ import annotations

from reconciler.core.kind import ResourceKind
from reconciler.kinds.gateway_config import GatewayConfigKind
from reconciler.kinds.gateway_service import GatewayServiceKind
from reconciler.kinds.gateway_unit import GatewayUnitKind
from reconciler.kinds.legacy_units import LegacyUnitsKind
from reconciler.kinds.linger import LingerKind
from reconciler.kinds.operator import OperatorKind
from reconciler.kinds.profile_state import ProfileStateKind
from reconciler.kinds.reconcile_timer import ReconcileTimerKind
from reconciler.kinds.runtime import RuntimeKind
from reconciler.kinds.serve import ServeKind


def all_kinds() -> tuple[ResourceKind, ...]:
    """The kinds a plan consults, in listing order (dependencies may reorder actions)."""
    return (
        RuntimeKind(),
        LingerKind(),
        ProfileStateKind(),
        GatewayConfigKind(),
        GatewayUnitKind(),
        LegacyUnitsKind(),
        GatewayServiceKind(),
        OperatorKind(),
        ServeKind(),
        ReconcileTimerKind(),
    )

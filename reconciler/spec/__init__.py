"""The spec: YAML in, a validated typed `Spec` out, or every error with file:line:col.

`load_spec` and `Spec` are imported on first use (PEP 562): `validate` and the error types
need neither the loader nor the typed model (checking.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from reconciler.spec.errors import SpecError, SpecInvalid

if TYPE_CHECKING:
    from reconciler.spec.loader import load_spec
    from reconciler.spec.model import Spec

__all__ = ["Spec", "SpecError", "SpecInvalid", "load_spec"]


def __getattr__(name: str) -> Any:
    if name == "load_spec":
        from reconciler.spec.loader import load_spec

        return load_spec
    if name == "Spec":
        from reconciler.spec.model import Spec

        return Spec
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

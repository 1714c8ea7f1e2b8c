"""The spec: YAML in, a validated typed `Spec` out, or every error with file:line:col."""

from reconciler.spec.errors import SpecError, SpecInvalid
from reconciler.spec.loader import load_spec
from reconciler.spec.model import Spec

__all__ = ["Spec", "SpecError", "SpecInvalid", "load_spec"]

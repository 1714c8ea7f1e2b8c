"""The `linger:` section's semantic rules: its schema fragment says it all."""

from __future__ import annotations

from reconciler.spec.rules import Rule

RULES: tuple[Rule, ...] = ()

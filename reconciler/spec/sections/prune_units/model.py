"""The `prune_units:` section's model: whether every gateway unit the spec does not own goes.

A scalar section: its model is its value (a bool). A profile's own `prune:` (the core profile
schema) removes only the unowned units claiming that profile's port.
"""

from __future__ import annotations

# Where the section is, in the document and in the typed Spec (the same names).
MOUNT = ("prune_units",)

# What an absent `prune_units:` means: unowned units are reported, never removed.
DEFAULT = False


def build(section: bool) -> bool:
    """Validated `prune_units:` data -> its value."""
    return section

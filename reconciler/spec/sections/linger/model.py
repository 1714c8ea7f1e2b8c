"""The `linger:` section's model: whether the spec's user keeps a systemd manager without a login.

A scalar section: its model is its value (a bool is as frozen as a dataclass), so every reader
keeps writing `if spec.linger:`; a wrapper would make that test always true.
"""

from __future__ import annotations

# Where the section is, in the document and in the typed Spec (the same names).
MOUNT = ("linger",)

# True: on; False: off; None (`linger: null`): left alone.
Linger = bool | None
# What an absent `linger:` means: gateways must survive logout and start at boot.
DEFAULT: Linger = True


def build(section: Linger) -> Linger:
    """Validated `linger:` data (present: true, false or null) -> its value."""
    return section

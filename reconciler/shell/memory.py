"""Carrying out the edits of the reconciler's memory that a use case plans (`MarkBadVersion`,
`ForgetBadVersion`, `ForgetFailedInstall`; the memory itself: facts/switches.py).

The memory is in the spec user's home, so the runner calls `edit_memory` in a child dropped to
that user when we are root (system/as_user.py): a symlink the user planted there cannot make
root write anything the user could not. The files are the switch's and the install's own, so
their writers do the work (shell/switch.py, shell/install.py).
"""

from __future__ import annotations

from reconciler.core.action import ForgetBadVersion, ForgetFailedInstall, MarkBadVersion
from reconciler.facts.switches import BadVersion
from reconciler.shell.install import forget_install
from reconciler.shell.switch import clear_bad, mark_bad

MemoryEdit = MarkBadVersion | ForgetBadVersion | ForgetFailedInstall
FORGOTTEN = "forgotten"  # the detail of a forget that found something to forget


def edit_memory(op: MemoryEdit) -> str:
    """Carry out one edit (as whoever calls it: the runner calls it as the spec's user); the
    detail of its result ("forgotten", or "" when there was nothing to forget)."""
    if isinstance(op, MarkBadVersion):
        return mark_bad(op.memory, BadVersion(op.profile, op.version, op.at, op.reason))
    if isinstance(op, ForgetBadVersion):
        return FORGOTTEN if clear_bad(op.memory, op.profile) else ""
    return FORGOTTEN if forget_install(op.memory, op.version) else ""

"""The host's one reconciler lock, for use cases that stop or restart gateways outside `apply`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from reconciler.app.context import EXIT_LOCKED, AppContext, Failed

if TYPE_CHECKING:
    from reconciler.core.host import Account


@contextmanager
def host_lock(
    ctx: AppContext, owner: Account | None, command: str, timeout_s: float
) -> Iterator[None]:
    """Hold the locks apply takes (unattended/lock.py: as root, root's and then `owner`'s, the one
    their timer takes); busy past `timeout_s` is Failed with exit 75, an unusable lock Failed."""
    from reconciler.unattended import StateDirInvalid, check_state_dir, ensure_state_dir
    from reconciler.unattended.lock import LockBusy, LockUnusable, hold_lock, host_lock_path

    directory = ctx.state_dir()
    try:
        check_state_dir(directory)
        ensure_state_dir(directory)
    except StateDirInvalid as exc:
        raise Failed(str(exc)) from None
    try:
        with hold_lock(host_lock_path(directory), timeout_s, command=command) as held:
            held.join(owner)
            yield
    except LockUnusable as unusable:
        raise Failed(str(unusable)) from None
    except LockBusy as busy:
        raise Failed(str(busy), EXIT_LOCKED) from None

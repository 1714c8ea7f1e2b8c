"""Gateway updates: `update` (apply, after forgetting the bad-version marks asked for) and
`rollback` (switch a profile back behind the same health gate).

A version whose health-gated switch failed is marked bad for its profile in the reconciler's
memory (facts/switches.py): plans show that switch blocked and the timer never retries it.
`update SPEC --retry PROFILE` forgets the mark, then applies.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

from reconciler.app.context import EXIT_FAILED, EXIT_USAGE, AppContext, Failed
from reconciler.app.specs import load

if TYPE_CHECKING:
    from reconciler.app.applying import ApplyRequest
    from reconciler.core.host import HostContext
    from reconciler.spec.model import Spec


@dataclass(frozen=True)
class UpdateRequest:
    """`reconciler update SPEC [--retry PROFILE]...` and the apply it runs."""

    retry: tuple[str, ...]
    apply: ApplyRequest


def check_profiles(spec: Spec, names: tuple[str, ...], option: str) -> None:
    """Failed (usage) naming the profiles the spec has, for a name it does not."""
    known = [p.name for p in spec.profiles]
    for name in names:
        if name not in known:
            raise Failed(
                f"{option} {name}: the spec has no profile {name!r} (profiles: {', '.join(known)})",
                code=EXIT_USAGE,
            )


def forget_marks(ctx: AppContext, host: HostContext, profiles: tuple[str, ...]) -> None:
    """Forget each profile's bad-version mark (as the spec's user), saying what was forgotten."""
    from reconciler.facts.switches import SwitchMemoryProbe, memory_dir
    from reconciler.shell.as_user import acting_account, call_as
    from reconciler.shell.switch import clear_bad

    assert host.user is not None
    memory = memory_dir(host.user.home)
    known = SwitchMemoryProbe(memory).read(host)
    for name in profiles:
        mark = next((m for m in known.bad if m.profile == name), None)
        call_as(acting_account(host), partial(clear_bad, memory, name))
        if mark is None:
            ctx.echo(f"profile {name}: no version is marked bad; applying as usual")
        else:
            ctx.echo(
                f"profile {name}: forgot that {mark.version} failed its health check at "
                f"{mark.failed_at}; this apply tries it again"
            )


def update(ctx: AppContext, request: UpdateRequest) -> int:
    """Forget the marks of `--retry` profiles, then apply (see `apply`'s exit codes)."""
    from reconciler.app.applying import apply

    if request.retry:
        if request.apply.dry_run:
            raise Failed(
                "--retry forgets a mark, and --dry-run changes nothing: run `reconciler plan "
                "SPEC` to see the blocked switch, or drop --dry-run",
                code=EXIT_USAGE,
            )
        spec = load(ctx, request.apply.target)
        check_profiles(spec, request.retry, "--retry")
        host = ctx.discover_host(spec)
        if host.user is None:
            raise Failed(f"user {spec.host.user!r} does not exist on this host", EXIT_FAILED)
        try:
            forget_marks(ctx, host, request.retry)
        except OSError as exc:
            raise Failed(f"cannot forget the mark: {exc}") from None
    return apply(ctx, request.apply)

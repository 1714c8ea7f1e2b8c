"""Reading specs for the use cases, and `validate`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler.app.context import EXIT_FAILED, EXIT_OK, EXIT_USAGE, AppContext, Failed

if TYPE_CHECKING:
    from reconciler.spec.errors import SpecInvalid
    from reconciler.spec.model import Profile, Spec

STDIN = "-"
STDIN_NAME = "<stdin>"


def read_spec(ctx: AppContext, path: Path) -> Spec:
    """The spec at `path` (`-`: standard input); raises SpecInvalid."""
    from reconciler.spec import load_spec
    from reconciler.spec.limits import MAX_BYTES
    from reconciler.spec.loader import load_spec_text

    if ctx.spec_loader is not None:
        return ctx.spec_loader(path)
    if str(path) == STDIN:
        # One byte over the limit is enough for the loader to say "too large".
        return load_spec_text(ctx.read_stdin(MAX_BYTES + 1), STDIN_NAME)
    return load_spec(path)


def report_invalid(ctx: AppContext, exc: SpecInvalid) -> None:
    for error in exc.errors:
        ctx.error(str(error))


def profile_named(spec: Spec, spec_path: Path | str, name: str, option: str = "PROFILE") -> Profile:
    """The profile `name` of the spec, or Failed (exit 64, a usage error: the command line named
    it) saying which profiles there are. Every command that takes a profile asks here, so an
    unknown one exits the same everywhere."""
    try:
        return spec.profile(name)
    except KeyError:
        known = ", ".join(p.name for p in spec.profiles)
        raise Failed(
            f"{option} {name}: {spec_path} has no profile {name!r} (profiles: {known})",
            code=EXIT_USAGE,
        ) from None


def load(ctx: AppContext, path: Path) -> Spec:
    """The spec at `path`, or (printed: every error, then what was not done) Failed."""
    from reconciler.core.secrets import learn_secrets
    from reconciler.spec import SpecInvalid

    try:
        spec = read_spec(ctx, path)
    except SpecInvalid as exc:
        report_invalid(ctx, exc)
        ctx.error(f"{path}: invalid spec; nothing was probed or changed")
        raise Failed() from None
    if spec.backup is not None:  # a URL may carry credentials: masked in every output
        learn_secrets(spec.backup.repository)
    return spec


def validate(ctx: AppContext, paths: Sequence[Path]) -> int:
    """Check each spec (`-`: standard input, once); report every error; 1 when any is invalid."""
    from reconciler.spec import SpecInvalid

    if sum(1 for p in paths if str(p) == STDIN) > 1:
        raise Failed("`-` (standard input) can be given once", code=EXIT_USAGE)
    from reconciler.spec.fleet import is_fleet, load_fleet

    failed = False
    for path in paths:
        try:
            data = _head(path)
            if is_fleet(data):  # a fleet file: every host merged and checked (spec/fleet.py)
                hosts = load_fleet(data, str(path))
                ctx.echo(f"{path}: ok ({len(hosts)} hosts)")
                continue
            _check(ctx, path, data)
        except SpecInvalid as exc:
            failed = True
            report_invalid(ctx, exc)
        else:
            ctx.echo(f"{STDIN_NAME if str(path) == STDIN else path}: ok")
    return EXIT_FAILED if failed else EXIT_OK


def _check(ctx: AppContext, path: Path, head: bytes) -> None:
    """SpecInvalid unless the spec at `path` is valid: checked only, the typed model is not
    built (spec/checking.py), so `validate` does not pay for importing it. `head`: the bytes
    `_head` already read (b"": none, the file is read again and its problem reported)."""
    if ctx.spec_loader is not None:
        ctx.spec_loader(path)
        return
    from reconciler.spec.checking import check_spec, check_spec_text
    from reconciler.spec.limits import MAX_BYTES

    if str(path) == STDIN:
        check_spec_text(ctx.read_stdin(MAX_BYTES + 1), STDIN_NAME)
    elif head:
        check_spec_text(head, str(path))
    else:
        check_spec(path)


def _head(path: Path) -> bytes:
    """The file's bytes when it is a readable regular file within the spec limit, else b""
    (the spec loader then reports what is wrong with it, as for any spec)."""
    from reconciler.bounded import InputRefused, read_bounded
    from reconciler.spec.limits import MAX_BYTES

    if str(path) == STDIN:
        return b""
    try:
        return read_bounded(path, MAX_BYTES)
    except (InputRefused, OSError):
        return b""

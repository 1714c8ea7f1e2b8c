"""Unattended runs as use cases: the apply wrapper (suspension, lock, spec at a git revision,
run record), and `status`, `suspend`, `resume`.

`unattended_apply(spec_path, *, lock_timeout, non_interactive, log_format, do_apply, git_ref,
state, ctx)` returns the exit code. In order, it:

1. checks suspension: a non-interactive run that finds `reconciler suspend` in force records
   `suspended` and returns 0 at once (an interactive run prints a note and goes on);
2. takes the host's lock (unattended/lock.py: as root `/run/reconciler/lock`, then, once the spec
   names its user, that user's own lock; as the user their `<state dir>/lock`; `<state>/lock`
   when `state` is given), waiting up to `lock_timeout` seconds; when busy it prints the holder (pid,
   user, command, start) on stderr, records `locked` and returns EXIT_LOCKED (75); a lock path
   that is not a regular file we may open is an error (recorded `failed`, exit 1);
3. loads the spec: from SPEC, or with `git_ref` from the clone at that ref (fetch first when
   there is a remote; uncommitted edits are never read). An invalid spec is printed on stderr,
   recorded as `invalid-spec` with the reason, not applied, and returns 1; a git failure is
   recorded as `failed` and returns 1;
4. calls `do_apply(spec, log)` -- `log` is an `ActionLog` when lines must be logged
   (non-interactive or json), else None (render for humans) -- which returns an
   `ApplyOutcome` (reconciler/app/applying.py builds it with `outcome_of`);
5. appends the run record (runs.jsonl), logs the summary line (when `log`), and returns
   `outcome.exit_code`: 0 converged, 2 not converged (blocked or pending steps, nothing
   failed), 1 failed.

`do_apply` must return, not exit (an exception is still recorded as `failed`, then re-raised).
`spec.path` is where the spec lives (for git runs: the path inside the clone, not a temp file),
so the timer kind renders the same ExecStart on every run.

Exit codes: 0 converged or suspended; 1 failed or invalid spec; 2 not converged; 75 locked
(EX_TEMPFAIL: try again later). docs/commands.md lists them for every command.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reconciler.app.context import (
    EXIT_DIFFERS,
    EXIT_FAILED,
    EXIT_LOCKED,
    EXIT_OK,
    AppContext,
    Failed,
)
from reconciler.core.host import Account
from reconciler.frozen import frozen

if TYPE_CHECKING:
    from reconciler.app.remote import Reach
    from reconciler.core.host import HostContext
    from reconciler.shell.git import Revision
    from reconciler.spec.errors import SpecError, SpecInvalid
    from reconciler.spec.model import Spec
    from reconciler.unattended.logs import ActionLog, LogFormat
    from reconciler.unattended.metrics import RunMetrics
    from reconciler.unattended.place import StatePlace
    from reconciler.unattended.runs import ApplyOutcome, Result
    from reconciler.unattended.status import Status

__all__ = ["EXIT_FAILED", "EXIT_LOCKED", "EXIT_OK", "resume", "status", "suspend"]

DoApply = Callable[["Spec", "ActionLog | None"], "ApplyOutcome"]

# How many spec errors a run record repeats (all of them go to stderr).
REASON_ERRORS = 3


@frozen
class _Run:
    """What every record of this invocation shares, fixed when it starts."""

    ctx: AppContext
    place: StatePlace
    start: str
    interactive: bool
    spec_path: str
    log: ActionLog | None

    def finish(self, result: Result, **fields: Any) -> int:
        """Append the record, log the summary, and return the exit code for `result`."""
        from reconciler.core.host import Account
        from reconciler.unattended.runs import RunRecord

        record = RunRecord(
            start=self.start,
            end=self.ctx.timestamp(),
            result=result,
            interactive=self.interactive,
            pid=os.getpid(),
            user=Account.current().name,
            **{"spec_path": self.spec_path, **fields},
        )
        try:
            self.place.append_run(record)
        except OSError as exc:  # the run itself happened; say so rather than hide its outcome
            self.ctx.error(f"warning: could not write the run record: {exc}")
        if self.log is not None:
            self.log.summary(record)
        return RESULT_EXIT.get(result, EXIT_FAILED)


# A run's result as its exit code (docs/commands.md).
RESULT_EXIT: dict[str, int] = {
    "converged": EXIT_OK,
    "suspended": EXIT_OK,
    "not-converged": EXIT_DIFFERS,
    "locked": EXIT_LOCKED,
}


def unattended_apply(
    spec_path: Path,
    *,
    lock_timeout: float,
    non_interactive: bool,
    log_format: LogFormat,
    do_apply: DoApply,
    git_ref: str | None = None,
    state: Path | None = None,
    ctx: AppContext | None = None,
) -> int:
    """Suspension, lock, spec (at a git revision), apply, run record. See the module docstring."""
    from reconciler.spec import validation_cache
    from reconciler.unattended import ensure_state_dir
    from reconciler.unattended.lock import (
        LOCK_NAME,
        LockBusy,
        LockUnusable,
        hold_lock,
        host_lock_path,
    )
    from reconciler.unattended.logs import ActionLog
    from reconciler.unattended.place import StatePlace

    # This run changes the host: it may also remember that its spec passed validation.
    validation_cache.allow_writes()
    ctx = ctx if ctx is not None else AppContext()
    place = StatePlace(state) if state is not None else place_of_spec(ctx, spec_path)
    directory = checked_state_dir(place.directory)
    log = ActionLog(log_format, ctx.echo) if non_interactive or log_format == "json" else None
    run = _Run(ctx, place, ctx.timestamp(), not non_interactive, os.path.abspath(spec_path), log)

    suspension = place.suspension()
    if suspension is not None:
        if non_interactive:
            if log is not None:
                log.message(f"reconcile {suspension.describe()}; nothing done")
            return run.finish("suspended", reason=suspension.describe())
        ctx.error(
            f"note: unattended runs are {suspension.describe()} (`reconciler resume` lifts it); "
            "this interactive apply runs anyway"
        )

    def waiting(holder: Any) -> None:
        who = holder.describe() if holder is not None else "another process"
        ctx.error(f"waiting up to {lock_timeout:g} s for the apply lock held by {who}")

    # Root's lock, or the user's own (unattended/lock.py); a caller naming its own state
    # directory (tests, embedding) locks there instead.
    try:
        place.ensure()
    except OSError as exc:  # e.g. the user's state dir made a link to where they cannot write
        ctx.error(f"error: cannot use the state directory {directory}: {exc}")
        return run.finish("failed", reason=f"state directory {directory}: {exc}")
    try:
        lock = directory / LOCK_NAME if state is not None else host_lock_path(ctx.state_dir())
        if lock.parent == ctx.state_dir():
            ensure_state_dir(lock.parent)
        with hold_lock(lock, lock_timeout, on_wait=waiting) as held:
            return _locked_apply(run, spec_path, git_ref, do_apply, held.join)
    except LockUnusable as unusable:
        ctx.error(f"error: {unusable}")
        return run.finish("failed", reason=str(unusable))
    except LockBusy as busy:
        holder = busy.holder
        ctx.error(f"error: {busy}")
        if holder is not None:
            ctx.error(
                f"holder: pid={holder.pid} user={holder.user} started={holder.started} "
                f"command={holder.command}"
            )
        return run.finish("locked", reason=str(busy))


def _write_metrics(run: _Run, spec: Spec, outcome: ApplyOutcome, duration_s: float) -> None:
    """The run's metrics textfile (spec.metrics); a failure to write is a warning, never the
    run's failure. Written as the account the run's records are written as (its place's): as
    root by a child acting as the spec's user, as an admin account through the helper that
    `sudo -n -u USER` started (the folder is the user's to write, not the admin's), as the user
    directly; through a descriptor of the folder (unattended/metrics.py)."""
    from functools import partial

    from reconciler.system.as_user import call_as
    from reconciler.unattended.metrics import RunMetrics

    assert spec.metrics is not None
    directory = Path(spec.metrics.textfile_dir)
    finished = run.ctx.now().timestamp()
    converged = outcome.result == "converged"
    values = RunMetrics(
        finished_s=finished,
        duration_s=round(duration_s, 3),
        result=outcome.result,
        drift=len(outcome.drift),
        blocked=outcome.blocked,
        failed=outcome.failed,
        last_success_s=finished if converged else None,  # else the previous file's
        gateway_up={p.name: run.ctx.port_answers(p.port) for p in spec.profiles},
    )
    user = Account.lookup(spec.host.user)
    owner = (user.uid, user.gid) if user is not None else (os.geteuid(), os.getegid())
    # The place's account (None: we write our own records) acts for the user; else the user's
    # permissions as root has them, or ours (an admin without the rule: a warning below).
    acting = run.place.account if run.place.account is not None else user
    try:
        call_as(acting, partial(_metrics_file, directory, values, owner))
    except OSError as exc:
        message = f"could not write the metrics file in {directory}: {exc.strerror or exc}"
        if run.log is not None:
            run.log.message(message, level="warning")
        else:
            run.ctx.error(f"warning: {message}")


def _metrics_file(directory: Path, values: RunMetrics, owner: tuple[int, int]) -> str:
    """Done as the acting account (module-level: the sudo helper gets it pickled)."""
    from reconciler.unattended import metrics

    return str(metrics.write(directory, values, owner))


def _locked_apply(
    run: _Run,
    spec_path: Path,
    git_ref: str | None,
    do_apply: DoApply,
    join_lock: Callable[[Account | None], None],
) -> int:
    """Steps 3-5, under the lock."""
    from reconciler.spec import SpecInvalid, load_spec

    fields: dict[str, Any] = {}
    if git_ref is not None:
        loaded = _load_revision(run, spec_path, git_ref, fields)
        if isinstance(loaded, int):
            return loaded
        spec = loaded
    else:
        try:
            spec = load_spec(spec_path)
        except SpecInvalid as exc:
            return _invalid(run, str(spec_path), exc, fields)
        fields.update(_tree_fields(spec_path))
    join_lock(Account.lookup(spec.host.user))  # as root: also the lock the user's timer takes
    fields["spec_sha256"] = spec.sha256
    fields["spec_path"] = os.path.abspath(spec.path) if spec.path else str(spec_path)

    started = run.ctx.monotonic()
    try:
        outcome = do_apply(spec, run.log)
    except BaseException as exc:  # recorded whatever it is, then re-raised for cli's handler
        run.finish("failed", reason=_describe_exit(exc), **fields)
        raise
    if spec.metrics is not None:
        _write_metrics(run, spec, outcome, run.ctx.monotonic() - started)
    if git_ref is not None:
        fields["last_applied_revision"] = _carried(
            run, fields["last_attempted_revision"], outcome.result
        )
    return run.finish(
        outcome.result,
        applied=outcome.applied,
        failed=outcome.failed,
        blocked=outcome.blocked,
        skipped=outcome.skipped,
        drift=outcome.drift,
        reason=outcome.reason,
        **({"switches": outcome.switches} if outcome.switches else {}),
        **fields,
    )


def read_revision(spec_path: Path, ref: str) -> tuple[Revision, Spec | SpecInvalid]:
    """The spec as committed at `ref` (its path set to where it lives in the clone), or why
    those bytes are not a valid spec. Raises SourceError (no clone, no such ref or file)."""
    from reconciler.shell.git import checkout, git_runner
    from reconciler.spec import SpecInvalid
    from reconciler.spec.limits import MAX_BYTES
    from reconciler.spec.loader import load_spec_text

    revision = checkout(spec_path, ref, git_runner(spec_path).run)
    name = revision_name(revision)
    try:
        if len(revision.content.encode("utf-8")) > MAX_BYTES:
            raise SpecInvalid([_too_large(name)])
        return revision, replace(load_spec_text(revision.content, name), path=revision.origin)
    except SpecInvalid as exc:
        return revision, exc


def revision_name(revision: Revision) -> str:
    """How errors name a committed spec: `main@sha1:...:hosts/vm102.yaml`."""
    return f"{revision.name}:{revision.tree.relpath}"


def _load_revision(run: _Run, spec_path: Path, ref: str, fields: dict[str, Any]) -> Spec | int:
    """The spec as committed at `ref`, or the exit code of a run that ended here (recorded)."""
    from reconciler.shell.git import SourceError, git_runner, tree_state

    fields["source"] = f"{spec_path}@{ref}"
    try:
        revision, loaded = read_revision(spec_path, ref)
    except SourceError as exc:
        run.ctx.error(f"error: {exc}")
        fields["last_applied_revision"] = _carried(run, None, "failed")
        return run.finish("failed", reason=f"git source: {exc}", **fields)
    if revision.fetch_error:
        message = f"{revision.fetch_error}; applying {revision.name}, fetched before"
        run.ctx.error(f"warning: {message}")
        if run.log is not None:
            run.log.message(message, level="warning")
    state = tree_state(revision.tree, git_runner(spec_path).run)
    fields.update(
        source=revision.source,
        spec_path=str(revision.origin),
        git_commit=revision.commit,
        git_dirty=state.dirty,  # what the clone holds beside the commit: ignored, noted
        last_attempted_revision=revision.name,
    )
    if not isinstance(loaded, Exception):
        return loaded
    fields["last_applied_revision"] = _carried(run, None, "invalid-spec")
    return _invalid(run, revision_name(revision), loaded, fields)


def _invalid(run: _Run, name: str, exc: SpecInvalid, fields: dict[str, Any]) -> int:
    errors = [str(e) for e in exc.errors]
    for error in errors:
        run.ctx.error(error)
    run.ctx.error(f"{name}: invalid spec; nothing was probed or changed")
    shown = "; ".join(e.replace("\n", " ") for e in errors[:REASON_ERRORS])
    more = f" (and {len(errors) - REASON_ERRORS} more)" if len(errors) > REASON_ERRORS else ""
    return run.finish("invalid-spec", reason=f"{name} is invalid: {shown}{more}", **fields)


def _too_large(name: str) -> SpecError:
    from reconciler.spec.errors import SpecError
    from reconciler.spec.limits import MAX_BYTES

    return SpecError(
        name, 0, 0, "", f"the file is too large (a spec may be at most {MAX_BYTES} bytes)"
    )


def _tree_fields(spec_path: Path) -> dict[str, Any]:
    """git_commit/git_dirty of the work tree holding a plain run's spec ({} when none)."""
    from reconciler.shell.git import git_runner, tree_state, work_tree

    try:
        runner = git_runner(spec_path)
        tree = work_tree(spec_path, runner.run)
        if tree is None:
            return {}
        state = tree_state(tree, runner.run)
    except OSError:
        return {}
    return {"git_commit": state.commit, "git_dirty": state.dirty}


def _carried(run: _Run, attempted: str | None, result: Result) -> str | None:
    from reconciler.unattended.runs import RunRecordsCorrupt, carried_revision

    try:
        history = run.place.runs()
    except (RunRecordsCorrupt, OSError) as exc:  # a broken history must not stop the run itself
        run.ctx.error(f"warning: {exc}; the last applied revision is not carried over")
        history = []
    return carried_revision(history, attempted, result)


def _describe_exit(exc: BaseException) -> str:
    if isinstance(exc, Failed):
        return exc.message or f"apply failed (exit {exc.code})"
    if isinstance(exc, SystemExit):
        return f"apply exited with code {exc.code}"
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    return f"{type(exc).__name__}: {exc}"


def checked_state_dir(directory: Path) -> Path:
    """`directory`, or Failed with what to do when something else is in its place."""
    from reconciler.unattended import StateDirInvalid, check_state_dir

    try:
        check_state_dir(directory)
    except StateDirInvalid as exc:
        raise Failed(str(exc)) from None
    return directory


# --- status / suspend / resume -------------------------------------------------------------------


def status(ctx: AppContext, spec_path: Path, *, as_json: bool, reach: Reach | None = None) -> int:
    """The last runs, drift found, suspension and the reconcile timer. Read-only.

    A spec that cannot be read is an error (exit 1); an invalid one still shows the records.
    With a remote host (--target, host.ssh), the host's own status, over SSH.
    """
    if reach is not None:
        from reconciler.app.remote import remote_for_path, run_there

        found = remote_for_path(ctx, spec_path, reach)
        if found is not None:
            return run_there(ctx, found[1], found[0], ["status", *(["--json"] if as_json else [])])
    from reconciler.unattended.runs import RunRecordsCorrupt
    from reconciler.unattended.status import build_status, render_status, status_document

    if str(spec_path) != "-" and not spec_path.is_file():
        what = "does not exist" if not spec_path.exists() else "is not a file"
        raise Failed(f"{spec_path} {what}: name the spec the timer applies")
    place = place_of_spec(ctx, spec_path)
    checked_state_dir(place.directory)
    try:
        records = place.runs()
    except (RunRecordsCorrupt, OSError) as exc:  # OSError: a FIFO or device, an oversized file
        raise Failed(str(exc)) from None
    unit, schedule, note = _probe_timer(ctx, spec_path)
    now_s, monotonic_s = ctx.now().timestamp(), ctx.monotonic()
    result: Status = build_status(
        records, place.suspension(), unit, schedule, now_s=now_s, monotonic_s=monotonic_s
    )
    if note:
        result = replace(result, timer=replace(result.timer, detail=note))
    lines, backups = _backup_status(ctx, spec_path, place, now_s)
    failed = _failed_installs(ctx, spec_path)
    lines += [
        f"install failed: {f.version} at {f.failed_at} ({f.reason}); not tried again until "
        "the spec changes it or `reconciler update SPEC --retry PROFILE`"
        for f in failed
    ]
    if as_json:
        document = status_document(result)
        if lines:
            document["backups"] = backups
        if failed:
            document["failed_installs"] = [
                {"version": f.version, "failed_at": f.failed_at, "reason": f.reason} for f in failed
            ]
        ctx.echo(json.dumps(document, indent=2, sort_keys=False))
    else:
        ctx.echo(render_status(result, now_s=now_s), nl=False)
        for line in lines:
            ctx.echo(line)
    return EXIT_OK


def _backup_status(
    ctx: AppContext, spec_path: Path, place: StatePlace, now_s: float
) -> tuple[list[str], list[Any]]:
    """Backup freshness per profile when the spec has a backup section (docs/backups.md)."""
    from reconciler.app.backup import status_lines
    from reconciler.app.specs import read_spec
    from reconciler.spec import SpecInvalid

    try:
        spec = read_spec(ctx, spec_path)
    except SpecInvalid:
        return [], []
    return status_lines(spec, place, now_s)


def _failed_installs(ctx: AppContext, spec_path: Path) -> tuple[Any, ...]:
    """The gateway installs that failed and wait for the spec or `update --retry` (the
    reconciler's memory in the spec user's home, facts/switches.py); none when unknown."""
    from reconciler.app.specs import read_spec
    from reconciler.core.probe import ProbeFailed
    from reconciler.facts.switches import SwitchMemoryProbe, memory_dir
    from reconciler.spec import SpecInvalid

    try:
        spec = read_spec(ctx, spec_path)
        host: HostContext = ctx.discover_host(spec)
        if host.user is None:
            return ()
        return SwitchMemoryProbe(memory_dir(host.user.home)).read(host).failed_installs
    except (SpecInvalid, ProbeFailed, OSError):
        return ()


def _probe_timer(ctx: AppContext, spec_path: Path) -> tuple[Any, Any, str]:
    """(UnitStatus | None, TimerSchedule | None, note) for reconciler.timer of the spec's user."""
    from reconciler.app.specs import read_spec
    from reconciler.core.probe import ProbeFailed, ProbeSession
    from reconciler.facts.systemd import UnitStatusProbe
    from reconciler.spec import SpecInvalid
    from reconciler.unattended.status import TIMER_UNIT, TimerScheduleProbe

    try:
        spec = read_spec(ctx, spec_path)
    except SpecInvalid as exc:
        return None, None, f"{spec_path} is invalid ({len(exc.errors)} error(s)); timer not probed"
    host: HostContext = ctx.discover_host(spec)
    runner = ctx.make_runner(host, False)
    unit_probe, schedule_probe = UnitStatusProbe(TIMER_UNIT), TimerScheduleProbe(TIMER_UNIT)
    facts = ProbeSession(host, runner.run).collect([unit_probe, schedule_probe])
    try:
        unit = facts.get(unit_probe)
    except ProbeFailed as exc:
        return None, None, f"could not read {TIMER_UNIT}: {exc}"
    try:
        schedule = facts.get(schedule_probe)
    except ProbeFailed:
        schedule = None  # the unit's state is still worth showing
    return unit, schedule, ""


def suspend(
    ctx: AppContext, reason: str, *, replace_existing: bool, spec_path: Path | None = None
) -> int:
    """Pause unattended runs (of SPEC's user, when given: as root, the user's timer). A
    suspension in force is kept (and shown) unless replaced."""
    from reconciler.core.host import Account

    place = _place_of_command(ctx, spec_path)
    existing = place.suspension()
    if existing is not None and not replace_existing:
        ctx.echo(
            f"Unattended runs are already {existing.describe()}; kept that suspension "
            "(pass --replace to replace it with this one, `reconciler resume` lifts it)."
        )
        return EXIT_OK
    state = place.suspend(reason, ctx.timestamp(), Account.current().name)
    replaced = f" (replaced: {existing.describe()})" if existing is not None else ""
    ctx.echo(f"Unattended runs {state.describe()}{replaced}. `reconciler resume` lifts it.")
    return EXIT_OK


def resume(ctx: AppContext, spec_path: Path | None = None) -> int:
    """Let unattended runs apply again after `reconciler suspend`."""
    lifted = _place_of_command(ctx, spec_path).resume()
    if lifted is None:
        ctx.echo("Unattended runs were not suspended.")
    else:
        ctx.echo(f"Resumed unattended runs (they were {lifted.describe()}).")
    return EXIT_OK


def _place_of_command(ctx: AppContext, spec_path: Path | None) -> StatePlace:
    """`suspend`/`resume`: SPEC's user's place; without SPEC our own (root is told that its
    own runs are not the user's timer)."""
    from reconciler.unattended.place import StatePlace

    if spec_path is None:
        place = StatePlace(checked_state_dir(ctx.state_dir()))
        if os.geteuid() == 0:
            ctx.error(
                "note: this is root's own state; name the spec (`reconciler suspend SPEC`) to "
                "pause or resume its user's timer"
            )
        return place
    if not spec_path.is_file():
        raise Failed(f"{spec_path} is not a file: name the spec whose user's timer to pause")
    place = place_of_spec(ctx, spec_path)
    if place.account is None:  # nobody acts for the spec's user: we must be that user (or root)
        _refuse_a_third_account(ctx, spec_path)
    checked_state_dir(place.directory)
    return place


def _refuse_a_third_account(ctx: AppContext, spec_path: Path) -> None:
    """SPEC names whose timer to pause: run by neither root nor the spec's user (an admin
    account over SSH without the sudo rule that lets it act as the user), it would pause that
    account's own runs, not the timer's. A spec that does not read keeps the old way (our own place, as a run records)."""
    from reconciler.app.specs import read_spec
    from reconciler.core.host import Account
    from reconciler.spec import SpecInvalid

    if os.geteuid() == 0:
        return
    try:
        user = read_spec(ctx, spec_path).host.user
    except (SpecInvalid, OSError, Failed):
        return
    me = Account.current().name
    if me != user:
        raise Failed(
            f"{spec_path} names {user}'s timer: run this as {user} or as root (we are {me}); "
            "nothing was changed"
        )


def place_of_spec(ctx: AppContext, spec_path: Path) -> StatePlace:
    """Where SPEC's host keeps its records and suspension (unattended/place.py): the spec
    user's state directory when root acts for them, or an admin account that `sudo -n -u USER`
    lets act for them (through the helper that sudo started), else ours. A spec that cannot be
    read leaves us our own (its run is recorded there)."""
    from reconciler.app.specs import read_spec
    from reconciler.spec import SpecInvalid
    from reconciler.unattended.place import StatePlace, state_place

    try:
        spec = read_spec(ctx, spec_path)
    except (SpecInvalid, OSError, Failed):
        return StatePlace(ctx.state_dir())
    if os.geteuid() != 0 and spec.host.user == Account.current().name:
        return StatePlace(ctx.state_dir())  # the spec's user: its own (no sudo asked)
    return state_place(ctx.discover_host(spec), ctx.state_dir())

"""Unattended runs on the command line: `status`, `suspend`, `resume`, and the apply wrapper.

Wiring into cli.py
------------------
Register the three commands::

    from reconciler.commands.unattended import resume, status, suspend
    cli.add_command(status)
    cli.add_command(suspend)
    cli.add_command(resume)

`apply` gains four options and hands its work to `unattended_apply`::

    --non-interactive           timer mode: log lines instead of the rendered plan, no prompt,
                                root-only steps blocked (never escalated), suspension honoured
    --lock-timeout SECONDS      wait this long for another apply's lock (default 0: fail at once)
    --log-format [text|json]    the log lines' format (json implies log lines, even interactively)
    --git-ref REF               apply SPEC as committed at REF of the git work tree holding it
                                (the timer passes it when the spec has `reconcile.source`)

`unattended_apply(spec_path, *, lock_timeout, non_interactive, log_format, git_ref, do_apply)`
returns the exit code. In order, it:

1. checks suspension: a non-interactive run that finds `reconciler suspend` in force records
   `suspended` and returns 0 at once (an interactive run prints a note and goes on);
2. takes the lock (`$XDG_STATE_HOME/reconciler/lock`), waiting up to `lock_timeout` seconds;
   when busy it prints the holder (pid, user, command, start) on stderr, records `locked` and
   returns EXIT_LOCKED (75);
3. loads the spec: from SPEC, or with `git_ref` from the clone at that ref (fetch first when
   there is a remote; uncommitted edits are never read). An invalid spec is printed on stderr,
   recorded as `invalid-spec` with the reason, not applied, and returns 1; a git failure is
   recorded as `failed` and returns 1;
4. calls `do_apply(spec, log)` -- `log` is an `ActionLog` when lines must be logged
   (non-interactive or json), else None (render for humans as today) -- which returns an
   `ApplyOutcome`: `outcome_of(plan, converge(...))`, or `outcome_of(plan, None)` when nothing
   ran (plan errors, nothing runnable, confirmation declined);
5. appends the run record (runs.jsonl), logs the summary line (when `log`), and returns
   `outcome.exit_code`: 0 converged (blocked steps included), 1 otherwise.

`do_apply` must return, not `sys.exit` (an exit or exception is still recorded -- exit 0 as
`converged`, anything else as `failed` -- then re-raised). `spec.path` is where the spec lives
(for git runs: the path inside the clone, not a temp file), so the timer kind renders the same
ExecStart on every run. In non-interactive mode `do_apply` passes the plan and every re-probed
plan through `block_root_steps(plan, host, apply_as_root=...)` (reconciler/unattended/
privilege.py): root-only steps become blocked steps naming the command to run once as root.
With `log`, pass `log.action` as converge's progress, and when nothing is runnable log each
blocked action (`log.action(ActionOutcome(a, "blocked", a.blocked))`). `--dry-run` does not
come here (like `plan`, it needs no lock and leaves no record).

Exit codes: 0 converged or suspended; 1 failed, not converged or invalid spec; 75 locked
(EX_TEMPFAIL: try again later).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from reconciler.core.host import HostContext
    from reconciler.spec.errors import SpecError, SpecInvalid
    from reconciler.spec.model import Spec
    from reconciler.unattended.logs import ActionLog, LogFormat
    from reconciler.unattended.runs import ApplyOutcome, Result
    from reconciler.unattended.status import Status

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_LOCKED = 75  # EX_TEMPFAIL (sysexits.h): another apply runs; try again later

DoApply = Callable[["Spec", "ActionLog | None"], "ApplyOutcome"]

# How many spec errors a run record repeats (all of them go to stderr).
REASON_ERRORS = 3


@dataclass(frozen=True)
class _Run:
    """What every record of this invocation shares, fixed when it starts."""

    directory: Path
    start: str
    interactive: bool
    spec_path: str
    log: ActionLog | None

    def finish(self, result: Result, **fields: Any) -> int:
        """Append the record, log the summary, and return the exit code for `result`."""
        from reconciler.core.host import Account
        from reconciler.unattended.runs import RunRecord, append_record

        record = RunRecord(
            start=self.start,
            end=_now(),
            result=result,
            interactive=self.interactive,
            pid=os.getpid(),
            user=Account.current().name,
            **{"spec_path": self.spec_path, **fields},
        )
        try:
            append_record(self.directory, record)
        except OSError as exc:  # the run itself happened; say so rather than hide its outcome
            click.echo(f"warning: could not write the run record: {exc}", err=True)
        if self.log is not None:
            self.log.summary(record)
        if result in ("converged", "suspended"):
            return EXIT_OK
        return EXIT_LOCKED if result == "locked" else EXIT_FAILED


def unattended_apply(
    spec_path: Path,
    *,
    lock_timeout: float,
    non_interactive: bool,
    log_format: LogFormat,
    do_apply: DoApply,
    git_ref: str | None = None,
    state: Path | None = None,
) -> int:
    """Suspension, lock, spec (at a git revision), apply, run record. See the module docstring."""
    from reconciler.shell.lock import LockBusy, apply_lock
    from reconciler.unattended import state_dir
    from reconciler.unattended.logs import ActionLog
    from reconciler.unattended.suspend import current

    directory = state if state is not None else state_dir()
    log = ActionLog(log_format, click.echo) if non_interactive or log_format == "json" else None
    run = _Run(directory, _now(), not non_interactive, os.path.abspath(spec_path), log)

    suspension = current(directory)
    if suspension is not None:
        if non_interactive:
            if log is not None:
                log.message(f"reconcile {suspension.describe()}; nothing done")
            return run.finish("suspended", reason=suspension.describe())
        click.echo(
            f"note: unattended runs are {suspension.describe()} (`reconciler resume` lifts it); "
            "this interactive apply runs anyway",
            err=True,
        )

    def waiting(holder: Any) -> None:
        who = holder.describe() if holder is not None else "another process"
        click.echo(f"waiting up to {lock_timeout:g} s for the apply lock held by {who}", err=True)

    try:
        with apply_lock(directory, lock_timeout, on_wait=waiting):
            return _locked_apply(run, spec_path, git_ref, do_apply)
    except LockBusy as busy:
        holder = busy.holder
        click.echo(f"error: {busy}", err=True)
        if holder is not None:
            click.echo(
                f"holder: pid={holder.pid} user={holder.user} started={holder.started} "
                f"command={holder.command}",
                err=True,
            )
        return run.finish("locked", reason=str(busy))


def _locked_apply(run: _Run, spec_path: Path, git_ref: str | None, do_apply: DoApply) -> int:
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
    fields["spec_sha256"] = spec.sha256
    fields["spec_path"] = os.path.abspath(spec.path) if spec.path else str(spec_path)

    try:
        outcome = do_apply(spec, run.log)
    except BaseException as exc:  # recorded whatever it is, then re-raised for cli's handler
        if isinstance(exc, SystemExit) and exc.code in (0, None):
            run.finish("converged", reason="apply exited early", **fields)
        else:
            run.finish("failed", reason=_describe_exit(exc), **fields)
        raise
    if git_ref is not None:
        fields["last_applied_revision"] = _carried(
            run.directory, fields["last_attempted_revision"], outcome.result
        )
    return run.finish(
        outcome.result,
        applied=outcome.applied,
        failed=outcome.failed,
        blocked=outcome.blocked,
        skipped=outcome.skipped,
        drift=outcome.drift,
        reason=outcome.reason,
        **fields,
    )


def _load_revision(run: _Run, spec_path: Path, ref: str, fields: dict[str, Any]) -> Spec | int:
    """The spec as committed at `ref` (its path set to where it lives in the clone), or the
    exit code of a run that ended here (recorded)."""
    from reconciler.shell.git import SourceError, checkout, git_runner, tree_state
    from reconciler.spec import SpecInvalid
    from reconciler.spec.loader import load_spec_text
    from reconciler.spec.yaml_source import MAX_BYTES

    fields["source"] = f"{spec_path}@{ref}"
    runner = git_runner(spec_path)
    try:
        revision = checkout(spec_path, ref, runner.run)
    except SourceError as exc:
        click.echo(f"error: {exc}", err=True)
        fields["last_applied_revision"] = _carried(run.directory, None, "failed")
        return run.finish("failed", reason=f"git source: {exc}", **fields)
    if revision.fetch_error:
        message = f"{revision.fetch_error}; applying {revision.name}, fetched before"
        click.echo(f"warning: {message}", err=True)
        if run.log is not None:
            run.log.message(message, level="warning")
    state = tree_state(revision.tree, runner.run)
    fields.update(
        source=revision.source,
        spec_path=str(revision.origin),
        git_commit=revision.commit,
        git_dirty=state.dirty,  # what the clone holds beside the commit: ignored, noted
        last_attempted_revision=revision.name,
    )
    name = f"{revision.name}:{revision.tree.relpath}"
    try:
        if len(revision.content.encode("utf-8")) > MAX_BYTES:
            raise SpecInvalid([_too_large(name)])
        spec = load_spec_text(revision.content, name)
    except SpecInvalid as exc:
        fields["last_applied_revision"] = _carried(run.directory, None, "invalid-spec")
        return _invalid(run, name, exc, fields)
    return replace(spec, path=revision.origin)


def _invalid(run: _Run, name: str, exc: SpecInvalid, fields: dict[str, Any]) -> int:
    errors = [str(e) for e in exc.errors]
    for error in errors:
        click.echo(error, err=True)
    click.echo(f"{name}: invalid spec; nothing was probed or changed", err=True)
    shown = "; ".join(e.replace("\n", " ") for e in errors[:REASON_ERRORS])
    more = f" (and {len(errors) - REASON_ERRORS} more)" if len(errors) > REASON_ERRORS else ""
    return run.finish("invalid-spec", reason=f"{name} is invalid: {shown}{more}", **fields)


def _too_large(name: str) -> SpecError:
    from reconciler.spec.errors import SpecError
    from reconciler.spec.yaml_source import MAX_BYTES

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


def _carried(directory: Path, attempted: str | None, result: Result) -> str | None:
    from reconciler.unattended.runs import carried_revision, read_records

    return carried_revision(read_records(directory), attempted, result)


def _describe_exit(exc: BaseException) -> str:
    if isinstance(exc, SystemExit):
        return f"apply exited with code {exc.code}"
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    return f"{type(exc).__name__}: {exc}"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# --- status / suspend / resume -------------------------------------------------------------------


@click.command()
@click.argument("spec_path", metavar="SPEC", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the status as a JSON document.")
def status(spec_path: Path, as_json: bool) -> None:
    """Show the last runs, drift found, suspension and the reconcile timer. Read-only."""
    from reconciler.unattended import state_dir
    from reconciler.unattended.runs import read_records
    from reconciler.unattended.status import build_status, render_status, status_document
    from reconciler.unattended.suspend import current

    directory = state_dir()
    unit, schedule, note = _probe_timer(spec_path)
    now_s, monotonic_s = time.time(), time.monotonic()
    result: Status = build_status(
        read_records(directory),
        current(directory),
        unit,
        schedule,
        now_s=now_s,
        monotonic_s=monotonic_s,
    )
    if note:
        result = replace(result, timer=replace(result.timer, detail=note))
    if as_json:
        click.echo(json.dumps(status_document(result), indent=2, sort_keys=False))
    else:
        click.echo(render_status(result, now_s=now_s), nl=False)


def _probe_timer(spec_path: Path) -> tuple[Any, Any, str]:
    """(UnitStatus | None, TimerSchedule | None, note) for reconciler.timer of the spec's user."""
    from reconciler import cli
    from reconciler.core.probe import ProbeFailed, ProbeSession
    from reconciler.facts.systemd import UnitStatusProbe
    from reconciler.spec import SpecInvalid, load_spec
    from reconciler.unattended.status import TIMER_UNIT, TimerScheduleProbe

    try:
        spec = load_spec(spec_path)
    except SpecInvalid as exc:
        return None, None, f"{spec_path} is invalid ({len(exc.errors)} error(s)); timer not probed"
    host: HostContext = cli.discover_host(spec)
    runner = cli.make_runner(host, mutating=False)
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


@click.command()
@click.option("--reason", default="", help="Why (shown by status and by every skipped run).")
def suspend(reason: str) -> None:
    """Pause unattended runs: timer runs exit at once until `reconciler resume`."""
    from reconciler.unattended import state_dir
    from reconciler.unattended.suspend import suspend as do_suspend

    state = do_suspend(state_dir(), reason)
    click.echo(f"Unattended runs {state.describe()}. `reconciler resume` lifts it.")


@click.command()
def resume() -> None:
    """Let unattended runs apply again after `reconciler suspend`."""
    from reconciler.unattended import state_dir
    from reconciler.unattended.suspend import resume as do_resume

    lifted = do_resume(state_dir())
    if lifted is None:
        click.echo("Unattended runs were not suspended.")
    else:
        click.echo(f"Resumed unattended runs (they were {lifted.describe()}).")

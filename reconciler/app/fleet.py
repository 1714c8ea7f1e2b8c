"""Many hosts at once: `plan A.yaml B.yaml ...` and `apply ...`, one spec per host, in parallel.

Each host runs in a worker with its own buffered output; its block is printed whole when it
finishes (lines of two hosts never interleave), then a summary table. One host that cannot be
reached or fails never stops the others. `apply` plans every host first, asks once (unless
--yes), then runs each host's reviewed plan there (refused on a host whose plan changed).

Exit codes, aggregated the way `--detailed-exitcode` reads them: 1 when any host failed or was
unreachable, else 75 when any was locked, else 2 when any differs from its spec, else 0.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler.app.context import (
    EXIT_DIFFERS,
    EXIT_FAILED,
    EXIT_LOCKED,
    EXIT_OK,
    EXIT_USAGE,
    AppContext,
    Failed,
)
from reconciler.frozen import frozen

if TYPE_CHECKING:
    from reconciler.app.remote import Reach
    from reconciler.core.plan import Plan
    from reconciler.render.fleet import Report
    from reconciler.spec.model import Spec

# Enough to overlap SSH latency, few enough not to swamp the admin machine.
DEFAULT_JOBS = 8


@dataclass
class BufferedOutput:
    """An Output that keeps every line for printing later as one block."""

    lines: list[tuple[bool, str]] = field(default_factory=list)  # (is_error, text)

    def echo(self, text: str = "", *, nl: bool = True, color: bool = False) -> None:
        self.lines.append((False, text + ("\n" if nl else "")))

    def error(self, text: str) -> None:
        self.lines.append((True, text + "\n"))

    def text(self, *, errors: bool | None = None) -> str:
        return "".join(t for is_error, t in self.lines if errors is None or is_error == errors)


@frozen
class Counts:
    """What one host's plan or apply amounted to, for the summary table."""

    changes: int | None = None  # steps to run (add + change + remove + verify)
    blocked: int | None = None
    failed: int | None = None


@frozen
class HostRun:
    """One host's part of a fleet run."""

    spec: Path
    host: str
    code: int
    result: str
    seconds: float
    counts: Counts
    output: BufferedOutput


@frozen
class FleetRequest:
    """What a fleet plan/apply was asked for."""

    specs: tuple[Path, ...]
    jobs: int = DEFAULT_JOBS
    fmt: str = "human"
    host_check: bool = True
    reach: Reach | None = None
    no_color: bool = False
    # What to call a spec in the output: a fleet file's host is `FILE:NAME`, not its temp file.
    labels: Mapping[Path, str] = field(default_factory=dict)

    def label(self, spec: Path) -> str:
        return self.labels.get(spec, str(spec))


@contextlib.contextmanager
def expanded(
    ctx: AppContext, paths: Sequence[Path]
) -> Iterator[tuple[tuple[Path, ...], dict[Path, str]]]:
    """The specs to run: each fleet file (spec/fleet.py) becomes one merged spec per host, in a
    private folder for the length of the block, labelled `FILE:NAME`; anything else stays as
    given. An invalid fleet file prints every error (file:line:col) and fails: nothing runs."""
    import shutil
    import tempfile

    from reconciler.app.specs import report_invalid
    from reconciler.bounded import InputRefused, read_bounded
    from reconciler.spec import SpecInvalid
    from reconciler.spec.fleet import is_fleet, load_fleet
    from reconciler.spec.limits import MAX_BYTES

    out: list[Path] = []
    labels: dict[Path, str] = {}
    folder: Path | None = None
    try:
        for path in paths:
            try:
                data = read_bounded(path, MAX_BYTES) if str(path) != "-" else b""
            except (InputRefused, OSError):
                data = b""  # the spec loader reports it as it does for any spec
            if not is_fleet(data):
                out.append(path)
                continue
            try:
                hosts = load_fleet(data, str(path))
            except SpecInvalid as exc:
                report_invalid(ctx, exc)
                raise Failed(f"{path}: invalid fleet file; nothing was probed or changed") from None
            folder = folder or Path(tempfile.mkdtemp(prefix="reconciler-fleet-"))
            for number, host in enumerate(hosts):
                merged = folder / f"{len(out)}-{number}.yaml"
                merged.write_text(host.text, encoding="utf-8")
                out.append(merged)
                labels[merged] = f"{path}:{host.name}"
        yield tuple(out), labels
    finally:
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)


class LoadedSpecs:
    """Each spec of a fleet run read and validated once, whichever phase asks first.

    A fleet apply reviews, then applies: both phases (and the summary table's host column) use
    the spec as it was when the plan was reviewed, and no spec is validated twice.
    """

    def __init__(self) -> None:
        self._specs: dict[Path, Spec] = {}
        self._lock = threading.Lock()

    def load(self, ctx: AppContext, path: Path) -> Spec:
        """The spec at `path` (errors printed to `ctx` as `load` prints them)."""
        from reconciler.app.specs import load

        with self._lock:
            known = self._specs.get(path)
        if known is not None:
            return known
        spec = load(ctx, path)
        with self._lock:
            return self._specs.setdefault(path, spec)

    def host_name(self, path: Path) -> str:
        """host.name of a spec that loaded, else its file name (a spec that did not read)."""
        with self._lock:
            spec = self._specs.get(path)
        return spec.host.name if spec is not None else path.stem


HostJob = Callable[[AppContext, Path], tuple[int, str, Counts]]


def run_hosts(
    ctx: AppContext,
    request: FleetRequest,
    job: HostJob,
    specs: LoadedSpecs,
    *,
    blocks: bool = True,
) -> list[HostRun]:
    """Run `job` for every spec in parallel; print each host's block as it finishes (human
    format, `blocks`: a table of answers prints no block).

    Jobs read their spec through `specs`, which names each host's row.
    """
    printing = threading.Lock()
    runs: list[HostRun] = []

    def one(spec: Path) -> HostRun:
        buffer = BufferedOutput()
        host_ctx = replace(ctx, output=buffer, stdout_is_terminal=lambda: False)
        start = ctx.monotonic()
        try:
            code, result, counts = job(host_ctx, spec)
        except Failed as exc:
            from reconciler.app.remote import Unreachable

            if exc.message:
                buffer.error(f"error: {exc.message}")
            unreachable = isinstance(exc, Unreachable)
            code, result, counts = exc.code, "unreachable" if unreachable else "failed", Counts()
        except Exception as exc:  # one host's surprise must not stop the others
            buffer.error(f"error: {type(exc).__name__}: {exc}")
            code, result, counts = EXIT_FAILED, "failed", Counts()
        return HostRun(
            spec, specs.host_name(spec), code, result, ctx.monotonic() - start, counts, buffer
        )

    # Only a fleet run needs the pool (it imports logging): a one-host plan does not pay for it.
    from concurrent.futures import ThreadPoolExecutor, as_completed

    with ThreadPoolExecutor(max_workers=max(1, request.jobs)) as pool:
        futures = [pool.submit(one, spec) for spec in request.specs]
        for future in as_completed(futures):
            run = future.result()
            runs.append(run)
            if blocks and request.fmt == "human":
                with printing:
                    _print_block(ctx, run, request.label(run.spec))
    order = {spec: i for i, spec in enumerate(request.specs)}
    return sorted(runs, key=lambda r: order[r.spec])


def _print_block(ctx: AppContext, run: HostRun, label: str) -> None:
    ctx.echo(f"=== {run.host} ({label}): {run.result} ===")
    ctx.echo(run.output.text(errors=False), nl=False)
    errors = run.output.text(errors=True)
    if errors:
        ctx.echo(errors, nl=False)
    ctx.echo()


def summary_table(runs: Sequence[HostRun], labels: Mapping[Path, str] = {}) -> str:
    """host, result, changes, blocked, failed, duration: one row per host."""
    rows: list[tuple[str, ...]] = [
        ("HOST", "SPEC", "RESULT", "CHANGES", "BLOCKED", "FAILED", "TIME")
    ]
    for run in runs:
        c = run.counts
        rows.append(
            (
                run.host,
                labels.get(run.spec, str(run.spec)),
                run.result,
                *("-" if n is None else str(n) for n in (c.changes, c.blocked, c.failed)),
                f"{run.seconds:.1f}s",
            )
        )
    from reconciler.render.fleet import align

    return align(rows, right=range(3, len(rows[0])))


def aggregate(codes: Sequence[int]) -> int:
    """1 beats 75 beats 2 beats 0 (module docstring)."""
    for code in (EXIT_FAILED, EXIT_LOCKED, EXIT_DIFFERS):
        if code in codes:
            return code
    return EXIT_FAILED if any(c not in (EXIT_OK,) for c in codes) else EXIT_OK


def plan_counts(plan: Plan) -> Counts:
    runnable = len(plan.runnable)
    return Counts(changes=runnable, blocked=len(plan.blocked), failed=0)


# --- plan --------------------------------------------------------------------------------------


def plan_fleet(ctx: AppContext, request: FleetRequest, detailed_exitcode: bool) -> int:
    """`plan SPEC SPEC ...`: every host's plan, then the table (json: one document per host)."""
    from reconciler.app.planning import PlanRequest, probed_for, show_plan

    specs = LoadedSpecs()

    def job(host_ctx: AppContext, spec_path: Path) -> tuple[int, str, Counts]:
        spec = specs.load(host_ctx, spec_path)
        one = PlanRequest(spec_path, host_check=request.host_check, reach=_reach(request))
        host, runner, probed, source = probed_for(host_ctx, spec, one)
        color = host_ctx.use_color(request.no_color)
        show_plan(host_ctx, spec, host, runner, probed, request.fmt, color, source)  # type: ignore[arg-type]
        if probed.plan.errors:
            return EXIT_FAILED, "plan has errors", plan_counts(probed.plan)
        differs = probed.plan.has_changes
        return (
            (EXIT_DIFFERS if differs else EXIT_OK),
            ("differs" if differs else "matches"),
            plan_counts(probed.plan),
        )

    _remember_validation_if_all_remote(request)
    runs = run_hosts(ctx, request, job, specs)
    if request.fmt == "json":
        ctx.echo(json.dumps([_document(run, request.label(run.spec)) for run in runs], indent=2))
    else:
        ctx.echo(summary_table(runs, request.labels))
    code = aggregate([run.code for run in runs])
    return code if detailed_exitcode or code != EXIT_DIFFERS else EXIT_OK


def _remember_validation_if_all_remote(request: FleetRequest) -> None:
    """Every host another machine: the specs' validation may be kept in this machine's cache,
    the admin's (app/planning.py plan says why); one host that is this machine: not."""
    from reconciler.app.remote import named_remote
    from reconciler.spec import validation_cache

    try:
        reach = _reach(request)
    except Failed:
        return  # each host reports it
    if all(named_remote(path, reach, request.host_check) for path in request.specs):
        validation_cache.allow_writes()


def _document(run: HostRun, label: str) -> dict[str, object]:
    """One host of `--format json`: the plan document, or the error that stopped it."""
    text = run.output.text(errors=False)
    try:
        plan = json.loads(text) if text.strip() else None
    except ValueError:
        plan = None
    return {
        "host": run.host,
        "spec": label,
        "result": run.result,
        "exit_code": run.code,
        "plan": plan,
        "errors": run.output.text(errors=True).splitlines(),
    }


# --- doctor, versions, status: one table across hosts -------------------------------------------


@frozen
class HostReport:
    """A read-only day-2 command whose answers make one table across hosts (render/fleet.py)."""

    name: Report  # the command there, and its document's key in --format json
    argv: tuple[str, ...]  # its options there, for a JSON document (the spec is appended)
    here: Callable[[AppContext, Path], int]  # the same command on this machine, printing JSON
    failing: str = "failed"  # the result of a host that answered with a non-zero exit code


def report_fleet(ctx: AppContext, request: FleetRequest, report: HostReport) -> int:
    """`doctor|versions|status SPEC SPEC ...`: the command on every host in parallel (there over
    SSH, or here), each asked for its JSON document; then one table (or one JSON list), the
    exit code the worst of the hosts' (`aggregate`)."""
    from reconciler.app.remote import resolve, run_there
    from reconciler.render.fleet import HostAnswer, render_json, render_table

    specs = LoadedSpecs()
    reach = _reach(request)
    profiles: dict[Path, tuple[str, ...]] = {}

    def job(host_ctx: AppContext, spec_path: Path) -> tuple[int, str, Counts]:
        spec = specs.load(host_ctx, spec_path)
        profiles[spec_path] = tuple(p.name for p in spec.profiles)
        remote = resolve(spec, reach, host_check=request.host_check)
        if remote is None:
            code = report.here(host_ctx, spec_path)
        else:
            code = run_there(host_ctx, remote, spec, [report.name, *report.argv])
        return code, "answered", Counts()

    runs = run_hosts(ctx, request, job, specs, blocks=False)
    answers = []
    for run in runs:
        document = _answer_document(run)
        result = run.result  # unreachable, failed: it never answered
        if result == "answered":
            result = (
                "failed" if document is None else "ok" if run.code == EXIT_OK else report.failing
            )
        errors = tuple(run.output.text(errors=True).splitlines())
        answer = HostAnswer(
            run.host,
            request.label(run.spec),
            result,
            run.code,
            document,
            errors,
            profiles.get(run.spec, ()),
        )
        answers.append(answer)
    render = render_json if request.fmt == "json" else render_table
    ctx.echo(render(report.name, answers).rstrip("\n"))
    return aggregate([run.code for run in runs])


def _answer_document(run: HostRun) -> dict[str, object] | None:
    """The JSON document a host printed; None when it printed none (it failed first)."""
    text = run.output.text(errors=False)
    try:
        document = json.loads(text) if text.strip() else None
    except ValueError:
        return None
    return document if isinstance(document, dict) else None


@frozen
class HostAction:
    """A day-2 command that changes each host a little (`suspend`, `resume`): what it said on
    each host makes one table (render/fleet.py `render_outcomes`)."""

    argv: tuple[str, ...]  # the command there, with its options (the spec is appended)
    here: Callable[[AppContext, Path], int]  # the same command on this machine
    changes_host: bool = True  # it finishes there if the link drops (RemoteReconciler.call)


def act_fleet(ctx: AppContext, request: FleetRequest, action: HostAction) -> int:
    """`suspend|resume SPEC SPEC ...`: the command on every host in parallel (there over SSH, or
    here); then one table, a row per host with what it said or its error; the exit code the
    worst of the hosts' (`aggregate`)."""
    from reconciler.app.remote import resolve, run_there
    from reconciler.render.fleet import HostAnswer, render_outcomes

    specs = LoadedSpecs()
    reach = _reach(request)
    # Specs whose host is this machine share its state directory: one writes at a time (an
    # atomic write clears the temp files it finds there, a sibling thread's included).
    here = threading.Lock()

    def job(host_ctx: AppContext, spec_path: Path) -> tuple[int, str, Counts]:
        spec = specs.load(host_ctx, spec_path)
        remote = resolve(spec, reach, host_check=request.host_check)
        if remote is None:
            with here:
                code = action.here(host_ctx, spec_path)
        else:
            argv = list(action.argv)
            code = run_there(host_ctx, remote, spec, argv, changes_host=action.changes_host)
        return code, "done" if code == EXIT_OK else "failed", Counts()

    runs = run_hosts(ctx, request, job, specs, blocks=False)
    answers = [
        HostAnswer(
            run.host,
            request.label(run.spec),
            run.result,
            run.code,
            None,
            tuple(run.output.text(errors=True).splitlines()),
            said=tuple(run.output.text(errors=False).splitlines()),
        )
        for run in runs
    ]
    ctx.echo(render_outcomes(answers).rstrip("\n"))
    return aggregate([run.code for run in runs])


def _reach(request: FleetRequest) -> Reach:
    from reconciler.app.remote import Reach

    reach = request.reach or Reach()
    if reach.target not in (None, "local"):
        raise Failed("--target names one host; for many, put host.ssh in each spec", EXIT_USAGE)
    return reach


# --- apply -------------------------------------------------------------------------------------


def apply_fleet(ctx: AppContext, request: FleetRequest, *, yes: bool, dry_run: bool) -> int:
    """`apply SPEC SPEC ...`: plan all, ask once, then apply each host's reviewed plan."""
    reviewed: dict[Path, bytes] = {}
    lock = threading.Lock()
    specs = LoadedSpecs()

    def review(host_ctx: AppContext, spec_path: Path) -> tuple[int, str, Counts]:
        spec = specs.load(host_ctx, spec_path)
        code, result, counts, plan = _review_host(host_ctx, request, spec_path, spec)
        if plan is not None:
            with lock:
                reviewed[spec_path] = plan
        return code, result, counts

    planned = run_hosts(ctx, request, review, specs)
    ctx.echo(summary_table(planned, request.labels))
    if dry_run or not reviewed:
        if dry_run:
            ctx.echo("Dry run: no command was run that changes any host.")
        return aggregate([run.code for run in planned])
    if not yes and not ctx.agrees(f"Apply these changes to {len(reviewed)} host(s)?"):
        ctx.echo("Nothing changed.")
        return EXIT_OK
    applied = run_hosts(
        ctx,
        replace(request, specs=tuple(s for s in request.specs if s in reviewed)),
        lambda host_ctx, spec_path: _apply_host(
            host_ctx, request, specs.load(host_ctx, spec_path), spec_path, reviewed[spec_path]
        ),
        specs,
    )
    ctx.echo(summary_table(applied, request.labels))
    untouched = [run.code for run in planned if run.spec not in reviewed]
    return aggregate([*untouched, *(run.code for run in applied)])


def _review_host(
    ctx: AppContext, request: FleetRequest, spec_path: Path, spec: Spec
) -> tuple[int, str, Counts, bytes | None]:
    from reconciler.app.planning import PlanRequest, probed_for, show_plan
    from reconciler.app.remote import saved_plan_bytes

    one = PlanRequest(spec_path, host_check=request.host_check, reach=_reach(request))
    host, runner, probed, source = probed_for(ctx, spec, one)
    show_plan(ctx, spec, host, runner, probed, "human", ctx.use_color(request.no_color), source)
    plan, counts = probed.plan, plan_counts(probed.plan)
    if plan.errors:
        return EXIT_FAILED, "plan has errors", counts, None
    if not plan.runnable:
        return (
            (EXIT_DIFFERS, "blocked", counts, None)
            if plan.blocked
            else (EXIT_OK, "matches", counts, None)
        )
    if source is None:  # this machine: the saved plan names the spec as given
        from reconciler.app.review import saved_plan_text
        from reconciler.render.plan_context import plan_context

        text = saved_plan_text(plan, plan_context(spec, host, probed.probed_at), runner)
        return EXIT_DIFFERS, "to apply", counts, text.encode()
    return EXIT_DIFFERS, "to apply", counts, saved_plan_bytes(spec, host, runner, probed, source)


def _apply_host(
    ctx: AppContext, request: FleetRequest, spec: Spec, spec_path: Path, plan: bytes
) -> tuple[int, str, Counts]:
    """Run one host's reviewed plan (there, or here), then converge what became possible."""
    from reconciler.app.applying import RemoteApply, apply_remote
    from reconciler.app.remote import apply_saved_remote, connected, resolve

    remote = resolve(spec, _reach(request), host_check=request.host_check)
    if remote is None:
        return _apply_here(ctx, request, spec_path, plan)
    with connected(remote) as connection:
        result = apply_saved_remote(ctx, connection, spec, plan, request.host_check)
    code, run = result.exit_code, result.run or {}
    if code == EXIT_DIFFERS:  # steps became possible: plan, and run, again (as apply does)
        code = apply_remote(
            ctx, spec, remote, RemoteApply(False, True, request.host_check, True, 2)
        )
    counts = Counts(
        changes=_int(run.get("applied")),
        blocked=_int(run.get("blocked")),
        failed=_int(run.get("failed")),
    )
    return code, _result_name(code), counts


def _apply_here(
    ctx: AppContext, request: FleetRequest, spec_path: Path, plan: bytes
) -> tuple[int, str, Counts]:
    import tempfile

    from reconciler.app.applying import ApplyRequest, apply

    with tempfile.TemporaryDirectory(prefix="reconciler-fleet-") as folder:
        saved = Path(folder, "plan.json")
        saved.write_bytes(plan)
        code = apply(
            ctx, ApplyRequest(saved, yes=True, host_check=request.host_check, no_color=True)
        )
    return code, _result_name(code), Counts()


def _int(value: object) -> int | None:
    return value if isinstance(value, int) else None


def _result_name(code: int) -> str:
    return {EXIT_OK: "converged", EXIT_DIFFERS: "not converged", EXIT_LOCKED: "locked"}.get(
        code, "failed"
    )

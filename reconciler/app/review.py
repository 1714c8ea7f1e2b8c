"""Reviewing spec changes: plan formats, saved plans, snapshots (offline plans), spec diffs.

The building blocks of the `plan`, `probe`, `diff` and `apply PLAN.json` use cases
(reconciler/app/planning.py and applying.py).

How `apply PLAN.json` runs a saved plan (reconciler/app/applying.py)
-------------------------------------------------------------------
`reconciler apply FILE` takes a spec or a saved plan; `reads_as_document(FILE)` tells them apart
(a JSON object of ours: a saved plan, a plan without freshness, a snapshot, or one cut short).
For a saved plan:

1. `saved = load_saved_plan(FILE)` -- `SavedPlanInvalid` (not a plan, a plain `--format json`
   document, a snapshot, a truncated file, another format_version, or a file edited after it
   was made: a fingerprint that is not its digests', actions that are not the ones listed) is
   an error: print it, exit 1;
2. find the spec the plan was made from: `saved_spec_path(saved)` (in this folder's clone of
   the same repository, else where the plan was made, else as named; else an error listing
   every path tried);
3. probe and plan exactly as for a spec (same host check, same runner);
4. `check_fresh(saved, spec.path, spec.sha256, host.hostname, probed.plan,
   invoker=host.invoker.name)` -- `StalePlan` is an error: print it, exit 1, change nothing.
   It refuses another host ("Saved plan is for host X, this is Y"), an edited spec ("Saved plan
   is stale: the spec changed since the plan was made ..."), and any difference in what the
   steps do ("... the host changed since the plan was made: <addresses>"), and a file whose
   visible actions are not what the fingerprint stands for ("the plan file was edited after it
   was made: <field> is X in the file, Y in the plan");
5. run `probed.plan` (equal to the saved one, with contents computed just now) with
   `converge(..., max_passes=1)`: a step that only becomes possible after this pass (the unit
   waiting for `npm install`) was reviewed as blocked, so it is left for the next plan. No
   confirmation prompt is needed: the plan was reviewed (Terraform's `apply PLANFILE` too).
"""

from __future__ import annotations

import json
import os
import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from reconciler.app.plan_pass import HostMismatch, Probed, check_host, plan_from_facts
from reconciler.core.command import Command
from reconciler.core.host import HostContext
from reconciler.core.kind import ResourceKind
from reconciler.core.plan import Plan
from reconciler.core.probe import ProbeSession
from reconciler.core.untrusted import shell_line
from reconciler.frozen import frozen
from reconciler.render.plan_context import PlanContext, SnapshotSource
from reconciler.shell.files import OutRefused, write_out
from reconciler.shell.runner import ReadOnlyRunner
from reconciler.spec.model import Spec

if TYPE_CHECKING:  # imported late at run time: `reconciler --help` stays fast
    from reconciler.render.desired_diff import DesiredDiff
    from reconciler.render.human import DescribeCommand
    from reconciler.review.saved_plan import SavedPlan, SpecLocation
    from reconciler.review.snapshot import Snapshot

PlanFormat = Literal["human", "json", "markdown"]
FORMATS: tuple[PlanFormat, ...] = ("human", "json", "markdown")


class ReviewError(Exception):
    """A user-facing error of the review commands (one line, no traceback)."""


def choose_format(fmt: str | None, as_json: bool) -> PlanFormat:
    """`--format` with `--json` as its alias; both, disagreeing, is an error."""
    if as_json and fmt not in (None, "json"):
        raise ReviewError(f"--json and --format {fmt} disagree: pass one of them")
    chosen = "json" if as_json else (fmt or "human")
    if chosen not in FORMATS:
        raise ReviewError(f"unknown format {chosen!r}")
    return chosen


@frozen
class CommandView:
    """How a command is shown: its argv as it will run here, or why it cannot run."""

    runner: ReadOnlyRunner

    def argv(self, command: Command) -> tuple[str, ...]:
        return self.runner.wrap(command)[0]

    def refusal(self, command: Command) -> str | None:
        return self.runner.wrap(command)[1]


def describe_command(runner: ReadOnlyRunner) -> DescribeCommand:
    """A command as the human and Markdown formats show it: the argv as it will run here."""

    def describe(command: Command) -> str:
        argv, refusal = runner.wrap(command)
        text = shell_line(argv)
        return f"{text}   # cannot run: {refusal}" if refusal else text

    return describe


def render(
    fmt: PlanFormat,
    plan: Plan,
    context: PlanContext,
    runner: ReadOnlyRunner,
    describe: DescribeCommand,
    *,
    color: bool,
) -> str:
    """The plan in `fmt` (colour only matters to human)."""
    if fmt == "json":
        from reconciler.render.json_plan import document

        view = CommandView(runner)
        doc = document(plan, context, wrap=view.argv, refusal=view.refusal)
        return json.dumps(doc, indent=2, ensure_ascii=False)
    if fmt == "markdown":
        from reconciler.render.markdown import render_markdown

        return render_markdown(plan, context, describe)
    from reconciler.render.human import render_plan

    return render_plan(plan, describe, color=color, title=context.title())


def saved_plan_text(
    plan: Plan,
    context: PlanContext,
    runner: ReadOnlyRunner,
    location: SpecLocation | None = None,
) -> str:
    """The file `plan --out` writes: the JSON document plus its freshness data."""
    from reconciler.render.json_plan import document
    from reconciler.review.saved_plan import freshness, saved_plan_document

    view = CommandView(runner)
    doc = document(plan, context, wrap=view.argv, refusal=view.refusal)
    saved = saved_plan_document(doc, freshness(plan, context, location))
    return json.dumps(saved, indent=2, ensure_ascii=False) + "\n"


def write_saved_plan(path: Path, plan: Plan, context: PlanContext, runner: ReadOnlyRunner) -> None:
    """Write the saved plan atomically (it holds no secret: 0644 like any plan output)."""
    if plan.errors:
        raise ReviewError(f"the plan has errors; {path} was not written")
    location = spec_location(Path(context.spec_path)) if context.spec_path else None
    try:
        write_out(path, saved_plan_text(plan, context, runner, location), 0o644)
    except OutRefused as refused:
        raise ReviewError(str(refused)) from None


# --- where the spec of a saved plan is ------------------------------------------------------------


def spec_location(spec_path: Path) -> SpecLocation:
    """Where the spec is now: its absolute path and, in a git work tree, its path there and the
    repository (read with git as the owner of the folder, like the git source)."""
    from reconciler.review.saved_plan import SpecLocation
    from reconciler.shell.git import git_runner, place_of

    absolute = spec_path.absolute()
    place = place_of(absolute, git_runner(absolute.parent).run)
    if place is None:
        return SpecLocation(absolute=str(absolute))
    return SpecLocation(str(absolute), place.tree.relpath, place.repository)


def saved_spec_path(saved: SavedPlan, cwd: Path | None = None) -> Path:
    """The spec file a saved plan was made from, found from the folder `apply` runs in.

    Tried in order: the spec's path in this folder's git work tree (when it is a clone of the
    same repository), the absolute path where the plan was made, the path as named there
    relative to this folder. ReviewError lists every path tried and why each was not used.
    """
    from reconciler.shell.git import folder_place, git_runner

    here = (cwd or Path.cwd()).absolute()
    location = saved.freshness.spec_location
    tried: list[str] = []
    candidates: list[tuple[Path, str]] = []
    if location is not None and location.work_tree_path is not None:
        place = folder_place(here, git_runner(here).run)
        if place is None:
            tried.append(f"{location.work_tree_path} in a git work tree ({here} is not in one)")
        elif location.repository and place.repository != location.repository:
            tried.append(
                f"{location.work_tree_path} in {place.tree.top} (another repository: root "
                f"commit {_short(place.repository)}, the plan's is {_short(location.repository)})"
            )
        else:
            candidates.append(
                (place.tree.top / location.work_tree_path, f"in this work tree {place.tree.top}")
            )
    if location is not None and location.absolute is not None:
        candidates.append((Path(location.absolute), "where the plan was made"))
    if saved.spec_path is not None:
        candidates.append((here / saved.spec_path, f"as named, relative to {here}"))
    for path, why in candidates:
        if path.is_file():
            return path
        tried.append(f"{path} ({why}): not a file")
    raise ReviewError(
        f"{saved.path}: cannot find the spec this plan was made from; tried: "
        + "; ".join(tried)
        + ". Apply from inside a clone of the spec's repository, or make the plan again here"
    )


def _short(commits: str | None) -> str:
    return ",".join(c[:12] for c in (commits or "?").split(","))


# --- snapshots -----------------------------------------------------------------------------------


def record_host(
    spec: Spec, host: HostContext, runner: ReadOnlyRunner, kinds: tuple[ResourceKind, ...]
) -> tuple[Snapshot, Probed]:
    """Probe `host` for `spec` as `plan` would (read-only) and record a snapshot of it.

    Returns (Snapshot, the plan made from the same facts).
    """
    from reconciler.review.snapshot import (
        RecordingCollector,
        all_listeners,
        extra_probes,
        record_snapshot,
    )

    recorded_at = datetime.now(UTC).isoformat(timespec="seconds")
    session = ProbeSession(host, runner.run)
    recorder = RecordingCollector(session.collect)
    probed = plan_from_facts(spec, host, kinds, recorder.collect, recorded_at)
    # Only what the plan did not already ask: a probe is a question, asked once per run (the
    # same `tailscale status` twice cost a remote plan a third of a second).
    recorder.collect([p for p in extra_probes(spec, host) if p not in recorder.values])
    snapshot = record_snapshot(
        spec,
        host,
        recorder.values,
        recorded_at=recorded_at,
        listeners=all_listeners(host) if host.user is not None else None,
    )
    return snapshot, probed


# Snapshots hold paths, unit files and process command lines of the user's account: as private
# as the home they describe (issue 11: root `probe` used to write them 0644).
SNAPSHOT_MODE = 0o600


def write_snapshot(path: Path, snapshot: Snapshot) -> Snapshot:
    """Write `snapshot` to `path` atomically, mode 0600; returns what was written.

    When `path` already holds a snapshot of the same state, its `recorded_at` is kept, so the
    file comes out byte-identical (see `unchanged_since`).
    """
    from reconciler.review.snapshot import (
        SnapshotInvalid,
        load_snapshot,
        snapshot_text,
        unchanged_since,
    )

    try:
        if stat.S_ISREG(os.lstat(path).st_mode):  # never wait on a FIFO or read a device
            snapshot = unchanged_since(snapshot, load_snapshot(path).snapshot)
    except (OSError, SnapshotInvalid):
        pass  # no file yet, or not a snapshot this version reads: written afresh
    write_out(path, snapshot_text(snapshot), SNAPSHOT_MODE)
    return snapshot


def plan_against(
    spec: Spec, snapshot_path: Path, kinds: tuple[ResourceKind, ...], *, host_check: bool
) -> tuple[HostContext, ReadOnlyRunner, Probed, SnapshotSource]:
    """Plan `spec` against a snapshot file: no subprocess, no file of this machine read."""
    from reconciler.review.snapshot import SnapshotFacts, SnapshotInvalid, load_snapshot

    try:
        loaded = load_snapshot(snapshot_path)
    except SnapshotInvalid as exc:
        raise ReviewError(str(exc)) from None
    snapshot = loaded.snapshot
    host = snapshot.host_context()
    if host.user_name != spec.host.user:
        raise ReviewError(
            f"{snapshot_path} was recorded for user {host.user_name!r}, the spec is for "
            f"{spec.host.user!r}: record a snapshot with this spec (reconciler probe SPEC --out FILE)"
        )
    if host_check:
        try:
            check_host(spec, host)
        except HostMismatch as exc:
            raise ReviewError(
                f"{exc} (the snapshot {snapshot_path} is of {host.hostname})"
            ) from None
    facts = SnapshotFacts(snapshot, source=str(snapshot_path))
    probed = plan_from_facts(spec, host, kinds, facts.collect, snapshot.recorded_at)
    source = SnapshotSource(str(snapshot_path), loaded.sha256, snapshot.recorded_at)
    # Only to show commands as they would run there (sudo -n, runuser): it never runs one.
    return host, ReadOnlyRunner(host, env={}), probed, source


# --- spec diffs ----------------------------------------------------------------------------------


def diff_specs(old: Spec, new: Spec) -> DesiredDiff:
    """The change of desired state between two loaded versions of a spec."""
    from reconciler.render.desired_diff import DesiredDiff, SpecVersion
    from reconciler.review.desired_state import desired_changes, home_placeholder

    return DesiredDiff(
        old=SpecVersion(str(old.path), old.sha256),
        new=SpecVersion(str(new.path), new.sha256),
        host_name=new.host.name,
        home=str(home_placeholder(new)),
        changes=desired_changes(old, new),
    )

"""`reconciler versions SPEC`: the gateway versions installed under the spec's prefix.

Per version: complete or not, which profiles run it (the version their unit file's ExecStart
names, as probed), which want it (the spec), which marked it bad (the switch's memory,
facts/switches.py), and the disk it takes (`du`). Read-only: one probe round.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from reconciler.app.context import EXIT_OK, AppContext, Failed
from reconciler.app.specs import load
from reconciler.core.host import HostContext
from reconciler.core.probe import Facts, Probe, ProbeFailed
from reconciler.facts.gateway_versions import DiskUsage, DiskUsageProbe, InstalledVersionsProbe
from reconciler.facts.profile_files import unit_probe
from reconciler.facts.switches import SwitchMemoryProbe, memory_dir
from reconciler.frozen import frozen
from reconciler.gateway.paths import home, profile_paths
from reconciler.gateway.versions import prefix_path, profile_version, version_in_exec, versioned
from reconciler.spec.model import Spec


@frozen
class VersionRow:
    """One version directory (or one a profile wants that is not there)."""

    version: str
    state: str  # installed | incomplete | missing | install failed (<when>)
    runs: tuple[str, ...]
    wants: tuple[str, ...]
    bad: tuple[str, ...]  # "profile (failed_at)"
    disk_bytes: int | None


@frozen
class VersionsReport:
    prefix: Path
    package: str
    enabled: bool  # runtime.gateway.install is versioned
    rows: tuple[VersionRow, ...]
    leftovers: tuple[str, ...]
    running_elsewhere: tuple[tuple[str, str], ...]  # profile, ExecStart not under the prefix


def collect(spec: Spec, host: HostContext, facts_of: Any) -> VersionsReport:
    """Probe and assemble the report; `facts_of(probes) -> Facts` runs one round."""
    prefix = prefix_path(spec, home(host))
    listing_probe = InstalledVersionsProbe(prefix, spec.runtime.gateway.package)
    units = {p.name: unit_probe(profile_paths(spec, p, host)) for p in spec.profiles}
    memory = SwitchMemoryProbe(memory_dir(home(host)))
    facts: Facts = facts_of([listing_probe, memory, *units.values()])
    listing = facts.get(listing_probe)
    try:
        marks = facts.get(memory).bad
    except ProbeFailed:
        marks = ()
    try:
        failed = {f.version: f for f in facts.get(memory).failed_installs}
    except ProbeFailed:
        failed = {}
    runs: dict[str, list[str]] = {}
    elsewhere: list[tuple[str, str]] = []
    for name, probe in units.items():
        line = next(
            (x for x in (facts.get(probe).text or "").splitlines() if x.startswith("ExecStart=")),
            None,
        )
        if line is None:
            continue
        version = version_in_exec(line, prefix)
        if version is None:
            elsewhere.append((name, line.removeprefix("ExecStart=")))
        else:
            runs.setdefault(version, []).append(name)
    wants: dict[str, list[str]] = {}
    for profile in spec.profiles:
        wanted = profile_version(spec, profile)
        if wanted is not None and versioned(spec):
            wants.setdefault(wanted, []).append(profile.name)
    sizes: dict[str, DiskUsage] = {}
    if listing.versions:
        du = [DiskUsageProbe(prefix / v.version) for v in listing.versions]
        sized = facts_of(du)
        sizes = {p.path.name: sized.get(p) for p in du}
    names = sorted(
        {v.version for v in listing.versions} | set(wants) | set(runs),
        key=_version_key,
    )
    rows = []
    for name in names:
        entry = listing.get(name)
        state = "missing" if entry is None else "installed" if entry.usable else "incomplete"
        if entry is None and name in failed:
            state = f"install failed ({failed[name].failed_at})"
        rows.append(
            VersionRow(
                name,
                state,
                tuple(runs.get(name, ())),
                tuple(wants.get(name, ())),
                tuple(f"{m.profile} ({m.failed_at})" for m in marks if m.version == name),
                sizes[name].bytes if name in sizes else None,
            )
        )
    return VersionsReport(
        prefix,
        spec.runtime.gateway.package,
        versioned(spec),
        tuple(rows),
        listing.leftovers,
        tuple(elsewhere),
    )


def _version_key(version: str) -> tuple[Any, ...]:
    parts = version.replace("-", ".").split(".")
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts)


def _size(value: int | None) -> str:
    if value is None:
        return "-"
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value = value / 1000  # type: ignore[assignment]
    return "-"


def render_human(report: VersionsReport) -> str:
    """A table: version, state, runs, wants, marked bad, disk."""
    head = f"{report.package} versions under {report.prefix}"
    if not report.enabled:
        head += " (runtime.gateway.install is not versioned: the units run a global install)"
    table = [("VERSION", "STATE", "RUNS", "WANTED BY", "MARKED BAD", "DISK")]
    for row in report.rows:
        table.append(
            (
                row.version,
                row.state,
                ", ".join(row.runs) or "-",
                ", ".join(row.wants) or "-",
                ", ".join(row.bad) or "-",
                _size(row.disk_bytes),
            )
        )
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    lines = [head, ""]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in table]
    if not report.rows:
        lines.append("(nothing installed)")
    for name in report.leftovers:
        lines.append(
            f"leftover of a killed install: {report.prefix / name} (the next apply removes it)"
        )
    for profile, exec_start in report.running_elsewhere:
        lines.append(f"profile {profile} runs {exec_start} (not a versioned install)")
    return "\n".join(lines) + "\n"


def render_json(report: VersionsReport) -> str:
    doc = {
        "prefix": str(report.prefix),
        "package": report.package,
        "versioned": report.enabled,
        "versions": [
            {
                "version": r.version,
                "state": r.state,
                "runs": list(r.runs),
                "wanted_by": list(r.wants),
                "marked_bad": list(r.bad),
                "disk_bytes": r.disk_bytes,
            }
            for r in report.rows
        ],
        "leftovers": list(report.leftovers),
        "running_elsewhere": [{"profile": p, "exec_start": e} for p, e in report.running_elsewhere],
    }
    return json.dumps(doc, indent=2) + "\n"


def versions(ctx: AppContext, spec_path: Path, fmt: str, host_check: bool) -> int:
    """Print the report; 1 when the user does not exist here."""
    from reconciler.app.planning import host_for
    from reconciler.core.probe import ProbeSession

    spec = load(ctx, spec_path)
    host = host_for(ctx, spec, host_check)
    if host.user is None:
        raise Failed(f"user {spec.host.user!r} does not exist on this host")
    session = ProbeSession(host, ctx.make_runner(host, False).run)

    def facts_of(probes: list[Probe[Any]]) -> Facts:
        return session.collect(probes)

    report = collect(spec, host, facts_of)
    ctx.echo(render_json(report) if fmt == "json" else render_human(report), nl=False)
    return EXIT_OK

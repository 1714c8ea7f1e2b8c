"""Tables across hosts: `doctor`, `versions` and `status` of several specs (or a fleet file),
and what `suspend` / `resume` did on each.

Pure: each host's answer comes in as a `HostAnswer` (the JSON document the single-host command
printed there, or the error that stopped it); one table comes out, a row per host and profile
(per host for `status`), the failing host's error in its own row, or the same as JSON
(docs/remote.md, "Day 2 on many hosts"). Nothing here knows how a host was reached.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Literal

from reconciler.core.untrusted import printable
from reconciler.frozen import frozen

Report = Literal["doctor", "versions", "status"]

Row = tuple[str, ...]


@frozen
class HostAnswer:
    """One host's answer to a day-2 command, for the table."""

    host: str  # host.name (the spec's file name when the spec did not read)
    spec: str  # how the spec was named: a path, or FLEET:NAME
    result: str  # the host's verdict: ok, broken (doctor), failed, unreachable
    exit_code: int
    document: Mapping[str, Any] | None  # the command's own JSON document; None: no answer
    errors: tuple[str, ...] = ()  # what it printed on stderr
    profiles: tuple[str, ...] = ()  # the spec's profiles, in its order (versions' rows)
    said: tuple[str, ...] = ()  # what it printed on stdout (suspend, resume: one line)

    @property
    def problem(self) -> str:
        """The error to show in the host's row: its last `error:` line, else its first line
        (an invalid spec's first `file:line:col: field: message`)."""
        lines = [line.strip() for line in self.errors if line.strip()]
        marked = [
            line.removeprefix("error:").strip() for line in lines if line.startswith("error:")
        ]
        return (marked[-1:] or lines[:1] or ["no answer"])[0]


def align(rows: Sequence[Row], right: Iterable[int] = ()) -> str:
    """Rows as columns two spaces apart (`right`: the columns aligned right), no trailing
    blanks; the first row is the header."""
    numbers = set(right)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(
            cell.rjust(w) if i in numbers else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    )


def render_table(report: Report, answers: Sequence[HostAnswer]) -> str:
    """The human table of `report` across hosts, ending with a newline. Doctor's fixes follow
    the table, one line per broken profile (they are too long for a cell)."""
    header, rows_of = _TABLES[report]
    rows: list[Row] = [header]
    for answer in answers:
        if answer.document is None:
            rows.append(_failed_row(answer, header))
        else:
            rows.extend(rows_of(answer))
    text = align(rows) + "\n"
    if report == "doctor":
        text += "".join(f"{line}\n" for line in _doctor_fixes(answers))
    return text


def render_json(report: Report, answers: Sequence[HostAnswer]) -> str:
    """A list, one entry per host: `{host, spec, result, exit_code, REPORT, errors}`, REPORT
    being the command's own document for that host (null when it gave none)."""
    return json.dumps(
        [
            {
                "host": a.host,
                "spec": a.spec,
                "result": a.result,
                "exit_code": a.exit_code,
                report: a.document,
                "errors": list(a.errors),
            }
            for a in answers
        ],
        indent=2,
    )


def render_outcomes(answers: Sequence[HostAnswer]) -> str:
    """`suspend`/`resume` across hosts: a row per host, what it said there (its last line) or,
    when it failed, its error; ending with a newline."""
    rows: list[Row] = [("HOST", "SPEC", "RESULT", "DETAIL")]
    for answer in answers:
        said = [line for line in answer.said if line.strip()]
        detail = said[-1] if said and answer.exit_code == 0 else answer.problem
        rows.append((answer.host, answer.spec, answer.result, _cell(detail, limit=160)))
    return align(rows) + "\n"


def _failed_row(answer: HostAnswer, header: Row) -> Row:
    """A host without an answer: its result, dashes, and its error in the last column."""
    cells = ["-"] * len(header)
    cells[0], cells[1], cells[-1] = answer.host, answer.spec, _cell(answer.problem)
    cells[header.index("RESULT")] = answer.result
    return tuple(cells)


# --- doctor ---------------------------------------------------------------------------------------

DOCTOR_HEADER: Row = ("HOST", "SPEC", "PROFILE", "RESULT", "DETAIL")


def _doctor_rows(answer: HostAnswer) -> list[Row]:
    rows: list[Row] = []
    for profile in _list(answer.document, "profiles"):
        links = _list(profile, "links")
        broken = next((link for link in links if not link.get("ok")), None)
        if broken is None:
            detail = str(profile.get("url") or "not served over Tailscale")
        else:
            detail = f"{broken.get('link')}: {broken.get('detail')}"
        rows.append(
            (
                answer.host,
                answer.spec,
                _cell(str(profile.get("profile"))),
                "healthy" if broken is None else "broken",
                _cell(detail),
            )
        )
    return rows


def _doctor_fixes(answers: Sequence[HostAnswer]) -> list[str]:
    lines = []
    for answer in answers:
        for profile in _list(answer.document, "profiles"):
            for link in _list(profile, "links"):
                if not link.get("ok") and link.get("fix"):
                    where = f"{answer.host} {profile.get('profile')}"
                    lines.append(_cell(f"fix {where}: {link['fix']}", limit=1000))
    return lines


# --- versions -------------------------------------------------------------------------------------

VERSIONS_HEADER: Row = ("HOST", "SPEC", "PROFILE", "RESULT", "RUNS", "WANTS", "DETAIL")


def _versions_rows(answer: HostAnswer) -> list[Row]:
    """A row per profile of the spec: the version it runs and the one it wants."""
    document = answer.document or {}
    runs: dict[str, str] = {}
    wants: dict[str, str] = {}
    bad: dict[str, list[str]] = {}
    failed: set[str] = set()  # versions whose install failed (remembered, not tried again)
    for version in _list(document, "versions"):
        name = str(version.get("version"))
        if str(version.get("state", "")).startswith("install failed"):
            failed.add(name)
        for profile in version.get("runs") or ():
            runs[profile] = name
        for profile in version.get("wanted_by") or ():
            wants[profile] = name
        for mark in version.get("marked_bad") or ():  # "profile (failed_at)"
            bad.setdefault(str(mark).split(" ")[0], []).append(name)
    for elsewhere in _list(document, "running_elsewhere"):
        runs.setdefault(str(elsewhere.get("profile")), "unversioned")
    rows: list[Row] = []
    for profile in answer.profiles or tuple(dict.fromkeys([*runs, *wants])):
        ran, wanted = runs.get(profile, "-"), wants.get(profile, "-")
        if not document.get("versioned"):
            result = "unversioned"
        else:
            result = "current" if ran == wanted else "differs"
        notes = [f"install of {wanted} failed"] if wanted in failed else []
        notes += [f"marked bad: {', '.join(bad[profile])}"] if profile in bad else []
        detail = "; ".join(notes) or "-"
        cells = (profile, result, ran, wanted, detail)
        rows.append((answer.host, answer.spec, *(_cell(c) for c in cells)))
    return rows


# --- status ---------------------------------------------------------------------------------------

STATUS_HEADER: Row = ("HOST", "SPEC", "RESULT", "LAST RUN", "DRIFT", "SUSPENDED", "TIMER", "DETAIL")


def _status_rows(answer: HostAnswer) -> list[Row]:
    """One row per host: the last run (its result, when), drift, suspension, the timer."""
    document = answer.document or {}
    last = document.get("last_run") or {}
    drift = [str(x) for x in document.get("drift") or ()]
    suspended = document.get("suspended")
    notes = []
    if isinstance(suspended, Mapping) and suspended.get("reason"):
        notes.append(f"suspended: {suspended['reason']}")
    failed = [str(f.get("version")) for f in _list(document, "failed_installs")]
    if failed:
        notes.append(f"install failed: {', '.join(failed)}")
    stale = [str(b.get("profile")) for b in _list(document, "backups") if b.get("stale")]
    if stale:
        notes.append(f"backup stale: {', '.join(stale)}")
    return [
        (
            answer.host,
            answer.spec,
            _cell(str(last.get("result") or "never")),
            _cell(str(last.get("end") or "-")),
            _cell(", ".join(drift) or "none"),
            "yes" if suspended else "no",
            _timer(document.get("timer") or {}),
            _cell("; ".join(notes) or "-"),
        )
    ]


def _timer(timer: Mapping[str, Any]) -> str:
    if not timer.get("known"):
        return "unknown"
    if not timer.get("installed"):
        return "not installed"
    if not timer.get("enabled"):
        return "disabled"
    return "active" if timer.get("active") else "inactive"


_TABLES: dict[Report, tuple[Row, Callable[[HostAnswer], list[Row]]]] = {
    "doctor": (DOCTOR_HEADER, _doctor_rows),
    "versions": (VERSIONS_HEADER, _versions_rows),
    "status": (STATUS_HEADER, _status_rows),
}


def _list(document: Mapping[str, Any] | None, key: str) -> list[Mapping[str, Any]]:
    """document[key] as a list of mappings (anything else in it is skipped, never a crash)."""
    value = (document or {}).get(key)
    return [item for item in value if isinstance(item, Mapping)] if isinstance(value, list) else []


def _cell(text: str, limit: int = 100) -> str:
    """One line of at most `limit` characters, what a host sent made printable: a cell never
    breaks the table or the terminal."""
    line = printable(" ".join(text.split()))
    return line if len(line) <= limit else line[: limit - 1] + "…"

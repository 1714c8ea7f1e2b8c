"""render/fleet.py: the table across hosts, from documents the single-host commands' own
renderers make (so a change of their format shows here), and a host that did not answer."""

from __future__ import annotations

import json
import re
from pathlib import Path

from reconciler.app.doctor import Diagnosis, Link
from reconciler.app.doctor import render_json as doctor_json
from reconciler.app.versions import VersionRow, VersionsReport
from reconciler.app.versions import render_json as versions_json
from reconciler.render.fleet import HostAnswer, align, render_json, render_table


def _answer(host: str, document: str | None, **kwargs: object) -> HostAnswer:
    parsed = json.loads(document) if document is not None else None
    fields: dict = {"result": "ok", "exit_code": 0, **kwargs}  # type: ignore[type-arg]
    return HostAnswer(host, f"{host}.yaml", document=parsed, **fields)


def test_versions_rows_say_what_each_profile_runs_and_wants() -> None:
    report = VersionsReport(
        Path("/home/user/.local/lib/clawdbot"),
        "clawdbot",
        True,
        (
            VersionRow("2026.1.20", "installed", ("ops",), ("ops",), (), 10),
            VersionRow("2026.1.24", "installed", ("personal",), (), ("personal (2026-12-01)",), 10),
            VersionRow("2026.1.25", "install failed (2026-12-07)", (), ("personal",), (), None),
        ),
        (),
        (("canary", "/usr/bin/clawdbot gateway"),),
    )
    answer = _answer("vm102", versions_json(report), profiles=("ops", "personal", "canary"))
    lines = render_table("versions", [answer]).splitlines()
    assert [line.split(None, 6) for line in lines] == [
        ["HOST", "SPEC", "PROFILE", "RESULT", "RUNS", "WANTS", "DETAIL"],
        ["vm102", "vm102.yaml", "ops", "current", "2026.1.20", "2026.1.20", "-"],
        [
            "vm102",
            "vm102.yaml",
            "personal",
            "differs",
            "2026.1.24",
            "2026.1.25",
            "install of 2026.1.25 failed; marked bad: 2026.1.24",
        ],
        ["vm102", "vm102.yaml", "canary", "differs", "unversioned", "-", "-"],
    ]


def test_doctor_rows_name_the_first_broken_link_and_its_fix_follows() -> None:
    broken = Diagnosis(
        "ops",
        18809,
        None,
        (Link("tailscale", True, "up"), Link("unit", False, "not-found", fix="reconciler apply x")),
    )
    fine = Diagnosis("personal", 18789, "https://vm102.ts.net/", (Link("tailscale", True, "up"),))
    answer = _answer("vm102", doctor_json([broken, fine]), result="broken", exit_code=1)
    text = render_table("doctor", [answer])
    assert text.splitlines()[1:] == [
        "vm102  vm102.yaml  ops       broken   unit: not-found",
        "vm102  vm102.yaml  personal  healthy  https://vm102.ts.net/",
        "fix vm102 ops: reconciler apply x",
    ]


def test_status_rows_note_the_suspension_and_failed_installs() -> None:
    document = {
        "last_run": {"result": "converged", "end": "2026-12-07T12:00:00+00:00"},
        "drift": ["profile[ops].service"],
        "suspended": {"since": "2026-12-07T12:01:00+00:00", "by": "admin", "reason": "swap"},
        "timer": {"known": True, "installed": True, "enabled": True, "active": True},
        "failed_installs": [{"version": "2026.9.6", "failed_at": "x", "reason": "engines"}],
    }
    answer = HostAnswer("vm102", "vm102.yaml", "ok", 0, document)
    row = render_table("status", [answer]).splitlines()[1]
    assert re.split(r"\s{2,}", row) == [
        "vm102",
        "vm102.yaml",
        "converged",
        "2026-12-07T12:00:00+00:00",
        "profile[ops].service",
        "yes",
        "active",
        "suspended: swap; install failed: 2026.9.6",
    ]


def test_a_host_without_an_answer_is_one_row_with_its_error_made_printable() -> None:
    down = _answer(
        "vm103",
        None,
        result="unreachable",
        exit_code=1,
        errors=("warning: something", "error: ssh://vm103: connection refused\x1b[2J"),
    )
    for report in ("doctor", "versions", "status"):
        row = render_table(report, [down]).splitlines()[1]  # type: ignore[arg-type]
        assert row.startswith("vm103  vm103.yaml") and "unreachable" in row
        assert row.endswith("ssh://vm103: connection refused\\x1b[2J"), row
    assert json.loads(render_json("status", [down])) == [
        {
            "host": "vm103",
            "spec": "vm103.yaml",
            "result": "unreachable",
            "exit_code": 1,
            "status": None,
            "errors": list(down.errors),
        }
    ]


def test_align_pads_columns_and_aligns_the_numbers_right() -> None:
    assert align([("A", "N"), ("long", "1"), ("b", "100")], right=[1]) == (
        "A       N\nlong    1\nb     100"
    )

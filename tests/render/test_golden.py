"""Golden files: the three plan formats (and the spec diff) for a few plans, byte for byte.

Regenerate after an intended change with `RECONCILER_UPDATE_GOLDEN=1 make fast`, then review
the diff of tests/data/plans/ like any other change.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from plan_documents import assert_valid_plan
from plan_scenarios import SCENARIOS, SPEC_TEXT, spec_from

from reconciler.app.review import describe_command, diff_specs, render
from reconciler.render import desired_diff

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "plans"
UPDATE = os.environ.get("RECONCILER_UPDATE_GOLDEN") == "1"
FORMATS = {"human": "txt", "json": "json", "markdown": "md"}


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.write_text(text)
    assert path.exists(), f"{path} is missing: run with RECONCILER_UPDATE_GOLDEN=1"
    assert text == path.read_text(), f"{name} differs (RECONCILER_UPDATE_GOLDEN=1 regenerates)"


@pytest.mark.parametrize("fmt", sorted(FORMATS))
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_plan_formats_match_their_golden_files(scenario: str, fmt: str) -> None:
    case = SCENARIOS[scenario]
    probed = case.probed()
    runner = case.runner()
    text = render(
        fmt,  # type: ignore[arg-type]
        probed.plan,
        case.context(probed),
        runner,
        describe_command(runner),
        color=False,
    )
    if fmt == "json":
        assert_valid_plan(text)
    check_golden(f"{scenario}.{FORMATS[fmt]}", text + "\n")


NEW_SPEC = (
    SPEC_TEXT.replace("port: 18809", "port: 18829")
    .replace(
        "    - https: 443\n      profile: personal\n", "    - https: 443\n      profile: work\n"
    )
    .replace("  personal:\n", "  work:\n    port: 18849\n  personal:\n")
    + "reconcile:\n  timer:\n    enabled: true\n    interval: 30min\n"
)


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_spec_diff_formats_match_their_golden_files(fmt: str) -> None:
    diff = diff_specs(spec_from(SPEC_TEXT), spec_from(NEW_SPEC, "specs/vm102.new.yaml"))
    text = {
        "human": lambda: desired_diff.render_text(diff, color=False),
        "json": lambda: desired_diff.render_json(diff),
        "markdown": lambda: desired_diff.render_markdown(diff),
    }[fmt]()
    check_golden(f"diff-new-profile.{FORMATS[fmt]}", text + "\n")

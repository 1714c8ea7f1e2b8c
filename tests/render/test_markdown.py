"""The Markdown plan: a PR comment that never exceeds GitHub's limit and never hides a danger."""

from __future__ import annotations

import cProfile
import pstats
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from plan_scenarios import PIN, SCENARIOS, Scenario

from reconciler.app.review import describe_command
from reconciler.core.action import Action, Finding
from reconciler.core.plan import Plan
from reconciler.render.markdown import MAX_CHARACTERS, fit, render_markdown, warnings_of
from reconciler.render.plan_context import PlanContext
from reconciler.spec.model import (
    GatewayRuntime,
    Host,
    Node,
    Profile,
    Runtime,
    ServeEntry,
    Spec,
    Tailscale,
)

CONTEXT = PlanContext("specs/vm102.yaml", "a" * 64, "vm102", "vm102", "user", "user", "t")


def markdown(plan: Plan, limit: int = MAX_CHARACTERS) -> str:
    return render_markdown(plan, CONTEXT, lambda c: c.display(), limit=limit)


def big_spec(profiles: int) -> Spec:
    others = tuple(Profile(f"p{i:04d}", 20000 + 20 * i) for i in range(profiles - 2))
    return Spec(
        host=Host("vm102", "user"),
        runtime=Runtime(Node(range=">=22.12"), GatewayRuntime("clawdbot", version=PIN)),
        profiles=(Profile("ops", 18809, auth="token"), Profile("personal", 18789), *others),
        linger=True,
        tailscale=Tailscale(
            operator="user", serve=(ServeEntry(443, profile="personal"),), prune=True
        ),
        path=Path("specs/big.yaml"),
        sha256="b" * 64,
    )


def _plan_and_render(profiles: int) -> tuple[Plan, str, int]:
    """Plan and render a spec of `profiles` profiles; the Python function calls it took."""
    base = SCENARIOS["public-exposure"]
    case = Scenario("big", big_spec(profiles), base.snapshot, base.source)
    profiler = cProfile.Profile()
    profiler.enable()
    probed = case.probed()
    runner = case.runner()
    text = render_markdown(probed.plan, case.context(probed), describe_command(runner))
    profiler.disable()
    return probed.plan, text, pstats.Stats(profiler).total_calls  # type: ignore[attr-defined]


def test_a_2000_profile_plan_fits_one_comment_and_keeps_summary_and_warnings() -> None:
    plan, text, calls = _plan_and_render(2000)
    assert len(plan.actions) > 10_000
    assert len(text) <= MAX_CHARACTERS
    first = text.splitlines()[0]
    assert first.startswith("**reconciler plan for `vm102`**: Plan: ") and "to add" in first
    assert "> [!CAUTION]" in text and "`tailscale.funnel[443]`" in text
    assert "> [!NOTE]" in text and "Too long for one comment" in text
    assert "more lines not shown" in text
    assert text.count("\n```") == 2 and text.endswith("</details>\n")
    # Planning and rendering grow linearly with the profiles: ten times the profiles, about ten
    # times the work (quadratic would be a hundred). Counted in function calls, which a loaded
    # machine does not change, rather than timed.
    _, _, calls_200 = _plan_and_render(200)
    assert calls < 15 * calls_200, (calls, calls_200)


@settings(max_examples=25, deadline=None)
@given(limit=st.integers(min_value=4_000, max_value=40_000))
def test_any_limit_is_respected(limit: int) -> None:
    case = SCENARIOS["public-exposure"]
    probed = case.probed()
    # Repeat the plan's steps under new addresses until it is far too long.
    many = tuple(
        replace(a, address=f"{a.address}#{i}", depends_on=())
        for i in range(60)
        for a in probed.plan.actions
    )
    text = markdown(replace(probed.plan, actions=many), limit)
    assert len(text) <= limit
    assert text.startswith("**reconciler plan for `vm102`**")
    assert "> [!CAUTION]" in text and text.endswith("</details>\n")


def test_a_short_plan_is_not_cut() -> None:
    case = SCENARIOS["fresh-host"]
    text = markdown(case.probed().plan)
    assert "Too long" not in text and "> [!NOTE]" not in text
    assert "Plan: " in text.splitlines()[0]


@pytest.mark.parametrize(
    ("scenario", "caution"),
    [("fresh-host", False), ("in-sync", False), ("public-exposure", True)],
)
def test_the_warning_block_appears_for_removals_and_exposure_only(
    scenario: str, caution: bool
) -> None:
    assert ("> [!CAUTION]" in markdown(SCENARIOS[scenario].probed().plan)) is caution


def test_exposure_without_removal_is_a_warning_too() -> None:
    plan = Plan(
        actions=(
            Action("tailscale.serve[443]", "create", "serve", warning="public exposure requested"),
        ),
        findings=(Finding("x", "foreground funnel", "danger"),),
    )
    found = warnings_of(plan)
    assert not found.removals and found.exposures and found.dangers
    text = markdown(plan)
    assert "**This plan involves public exposure.**" in text
    assert "DANGER `x`: foreground funnel" in text


def test_the_warning_list_is_capped() -> None:
    plan = Plan(actions=tuple(Action(f"unit[u{i}]", "delete", "gone") for i in range(50)))
    text = markdown(plan)
    assert "This plan removes 50 resources" in text
    assert "> - ... and 30 more (in the plan below)" in text


def test_host_text_cannot_break_the_comment() -> None:
    plan = Plan(actions=(), findings=(Finding("x", "</details><img src=x> ``` fence", "danger"),))
    text = markdown(plan)
    assert "</details><img" not in text.split("<details>")[0]
    assert "&lt;/details>&lt;img src=x>" in text
    # a body with a ``` run gets a longer fence, so the code block cannot be closed early
    assert "\n````diff\n" in text


def test_fit_keeps_the_head_and_cuts_the_body_at_a_line() -> None:
    body = [f"line {i:03d} " + "x" * 50 for i in range(500)]
    text = fit(["HEAD"], body, "Show", 5_000)
    assert len(text) <= 5_000 and text.startswith("HEAD\n")
    shown = [line for line in text.splitlines() if line.startswith("line ")]
    assert shown == body[: len(shown)] and 0 < len(shown) < 500
    assert f"the first {len(shown)} of 500 lines are shown" in text
    assert f"... {500 - len(shown)} more lines not shown" in text

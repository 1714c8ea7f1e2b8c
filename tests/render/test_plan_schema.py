"""schemas/plan.schema.json: a valid 2020-12 schema, and every plan the engine makes matches it."""

from __future__ import annotations

import json

import engine_on_fakehost as drive
from hypothesis import given, settings
from plan_documents import SCHEMA_FILE, assert_valid_plan, plan_validator
from plan_scenarios import SCENARIOS
from test_laws import HostState, fake_host, host_states, specs

from reconciler.app.plan_pass import probe_and_plan
from reconciler.app.review import CommandView, describe_command, saved_plan_text
from reconciler.kinds import all_kinds
from reconciler.render.human import render_plan
from reconciler.render.json_plan import document
from reconciler.render.markdown import MAX_CHARACTERS, render_markdown
from reconciler.render.plan_context import plan_context
from reconciler.spec.model import Spec


def test_the_schema_is_valid_2020_12_and_documented() -> None:
    schema = json.loads(SCHEMA_FILE.read_text())
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"].endswith("plan.schema.json")
    plan_validator()  # check_schema passed
    for name, prop in schema["properties"].items():
        assert prop.get("description") or name == "format_version" or "$ref" in prop, name


def test_every_scenario_validates_plain_and_saved() -> None:
    for case in SCENARIOS.values():
        probed = case.probed()
        view = CommandView(case.runner())
        assert_valid_plan(document(probed.plan, case.context(probed), wrap=view.argv))
        assert_valid_plan(saved_plan_text(probed.plan, case.context(probed), case.runner()))


@settings(max_examples=10, deadline=None)
@given(spec=specs, state=host_states)
def test_every_generated_plan_is_valid_in_every_format(spec: Spec, state: HostState) -> None:
    # The laws' generated specs and hosts: whatever the engine plans, the document matches the
    # schema, the comment fits, the saved plan is a plan document.
    with fake_host(state) as fake:
        host = drive.host_context(fake, state.invoker)
        runner = drive.read_only_runner(fake, host)
        probed = probe_and_plan(spec, host, runner, all_kinds())
        context = plan_context(spec, host, probed.probed_at)
        view = CommandView(runner)
        assert_valid_plan(document(probed.plan, context, wrap=view.argv, refusal=view.refusal))
        assert (
            len(render_markdown(probed.plan, context, describe_command(runner))) <= MAX_CHARACTERS
        )
        render_plan(probed.plan, describe_command(runner), color=True)
        if not probed.plan.errors:
            assert_valid_plan(saved_plan_text(probed.plan, context, runner))

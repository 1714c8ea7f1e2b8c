"""Saved plans: `plan --out`, and the checks `apply PLAN.json` makes before running anything."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

import engine_on_fakehost as drive
import pytest
from fakehost import FakeHost
from plan_documents import assert_valid_plan
from plan_scenarios import SCENARIOS
from review_cli import SPEC, FakeHostCli

from reconciler.app.plan_pass import probe_and_plan
from reconciler.app.review import saved_spec_path
from reconciler.core.action import Action, RunCommand, WriteFile
from reconciler.core.command import Command
from reconciler.core.plan import Plan
from reconciler.kinds import all_kinds
from reconciler.review.saved_plan import (
    EditedPlan,
    SavedPlanInvalid,
    SpecLocation,
    StalePlan,
    action_digests,
    check_fresh,
    describe_differences,
    freshness,
    is_saved_plan,
    load_saved_plan,
    plan_fingerprint,
    reads_as_document,
    saved_plan_document,
)
from reconciler.shell.apply import converge
from reconciler.spec import load_spec


def fingerprint(plan: Plan) -> str:
    return plan_fingerprint(action_digests(plan))


# --- fingerprints ----------------------------------------------------------------------------------

RUN = RunCommand(Command(("loginctl", "enable-linger", "user"), needs_root=True, mutating=True))


def test_the_fingerprint_covers_what_a_step_does_not_how_it_is_worded() -> None:
    plan = Plan(actions=(Action("linger", "create", "because", (RUN,)),))
    reworded = Plan(actions=(Action("linger", "create", "for another reason", (RUN,)),))
    other_argv = Plan(
        actions=(
            Action(
                "linger",
                "create",
                "because",
                (RunCommand(Command(("loginctl", "enable-linger", "bob"), mutating=True)),),
            ),
        )
    )
    blocked = Plan(actions=(Action("linger", "create", "because", (RUN,), blocked="no"),))
    assert fingerprint(plan) == fingerprint(reworded)
    assert fingerprint(plan) != fingerprint(other_argv)
    assert fingerprint(plan) != fingerprint(blocked)


def test_a_secret_file_content_is_never_hashed() -> None:
    def writes(content: str, sensitive: bool) -> Plan:
        op = WriteFile(
            Path("/home/user/.clawdbot/clawdbot.json"), content, 0o600, sensitive=sensitive
        )
        return Plan(actions=(Action("profile[default].config", "update", "r", (op,)),))

    # A token edited on the host since the plan does not make it stale (nothing reviewed
    # changes), and the saved file cannot be used to guess the token.
    assert fingerprint(writes('{"token": "a"}', True)) == fingerprint(
        writes('{"token": "b"}', True)
    )
    assert fingerprint(writes("[Unit]\nA\n", False)) != fingerprint(writes("[Unit]\nB\n", False))


def test_differences_name_addresses() -> None:
    saved = (("a", "1"), ("b", "2"), ("c", "3"))
    fresh = (("a", "1"), ("b", "9"), ("d", "4"))
    assert (
        describe_differences(saved, fresh)
        == "b (changed), c (no longer planned), d (newly planned)"
    )
    assert (
        describe_differences(saved, tuple(reversed(saved)))
        == "the same steps, in another order (now: c, b, a)"
    )
    # Same steps, same order: only an edited fingerprint gets here, and it is not called a reorder.
    assert "another order" not in describe_differences(saved, saved)
    many = tuple((f"x{i}", "1") for i in range(30))
    assert describe_differences(many, ()).endswith(", and 18 more")


# --- the file --------------------------------------------------------------------------------------


def saved_file(tmp_path: Path) -> Path:
    case = SCENARIOS["fresh-host"]
    probed = case.probed()
    context = case.context(probed)
    from reconciler.app.review import saved_plan_text

    path = tmp_path / "plan.json"
    path.write_text(saved_plan_text(probed.plan, context, case.runner()))
    return path


def test_a_saved_plan_is_a_valid_plan_document_with_freshness(tmp_path: Path) -> None:
    path = saved_file(tmp_path)
    doc = json.loads(path.read_text())
    assert_valid_plan(doc)
    assert doc["freshness"]["hostname"] == "vm102"
    assert doc["freshness"]["spec_sha256"] == doc["spec"]["sha256"]
    assert is_saved_plan(path)
    saved = load_saved_plan(path)
    assert saved.spec_path == "specs/vm102.yaml"
    assert saved.summary.startswith("Plan: ")
    assert [a for a, _ in saved.freshness.actions] == [a["address"] for a in doc["actions"]]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("apiVersion: reconciler/v1\nhost: {}\n", "not a saved plan: not JSON (line 1, column 1)"),
        ('{"host": 1}', "not a saved plan (no format_version)"),
        ('{"format_version": "2", "freshness": {}}', "format_version '2' is not supported"),
        (
            '{"format_version": "1", "actions": []}',
            "without freshness data (from `plan --format json`?)",
        ),
        (
            '{"format_version": "1", "freshness": {"hostname": "h", "invoker": "u", '
            '"fingerprint": "f", "actions": [1]}}',
            "freshness.actions must list {address, sha256} objects",
        ),
        (
            '{"format_version": "1", "freshness": {"hostname": 3, "actions": []}}',
            "freshness.hostname is missing or not a string",
        ),
    ],
)
def test_files_that_are_not_saved_plans_are_refused_clearly(
    tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "x.json"
    path.write_text(content)
    with pytest.raises(SavedPlanInvalid) as caught:
        load_saved_plan(path)
    assert message in str(caught.value) and str(path) in str(caught.value)
    assert is_saved_plan(path) is ('"freshness": {' in content)
    with pytest.raises(SavedPlanInvalid, match="cannot read the saved plan"):
        load_saved_plan(tmp_path / "missing.json")


# --- staleness, pure -------------------------------------------------------------------------------


def test_check_fresh_refuses_another_host_an_edited_spec_and_a_different_plan(
    tmp_path: Path,
) -> None:
    case = SCENARIOS["fresh-host"]
    probed = case.probed()
    saved = load_saved_plan(saved_file(tmp_path))
    sha = case.spec.sha256
    check_fresh(saved, "specs/vm102.yaml", sha, "vm102", probed.plan)
    check_fresh(saved, "specs/vm102.yaml", sha, "vm102.tail1234.ts.net", probed.plan)
    with pytest.raises(StalePlan, match=r"^Saved plan is for host vm102, this is vm103"):
        check_fresh(saved, "specs/vm102.yaml", sha, "vm103", probed.plan)
    with pytest.raises(StalePlan, match=r"^Saved plan is stale: the spec changed since"):
        check_fresh(saved, "specs/vm102.yaml", "1" * 64, "vm102", probed.plan)
    drifted = replace(probed.plan, actions=probed.plan.actions[1:])
    with pytest.raises(StalePlan) as caught:
        check_fresh(saved, "specs/vm102.yaml", sha, "vm102", drifted, invoker="root")
    message = str(caught.value)
    assert message.startswith("Saved plan is stale: the host changed since the plan was made")
    assert "runtime.gateway (no longer planned)" in message
    assert "the plan was made as user, this runs as root" in message
    assert "reconciler plan specs/vm102.yaml --out" in message


def test_the_freshness_section_is_what_saved_plan_document_adds(tmp_path: Path) -> None:
    case = SCENARIOS["in-sync"]
    probed = case.probed()
    fresh = freshness(probed.plan, case.context(probed))
    assert fresh.actions == () and fresh.invoker == "user"
    doc = saved_plan_document({"format_version": "1"}, fresh)
    assert doc["freshness"]["fingerprint"] == plan_fingerprint(())


# --- on the fake host, through the CLI --------------------------------------------------------------


@pytest.fixture
def planned(tmp_path: Path) -> tuple[FakeHostCli, Path, Path]:
    fake = FakeHost(tmp_path / "host")
    fake.set_node("v22.12.0")
    fake.set_gateway("2026.1.20")
    cli = FakeHostCli(fake)
    spec = tmp_path / "vm102.yaml"
    spec.write_text(SPEC)
    plan_file = tmp_path / "plan.json"
    result = cli("plan", spec, "--out", plan_file)
    assert result.exit_code == 0, result.output
    assert f"Saved the plan to {plan_file}" in result.stderr
    yield cli, spec, plan_file
    fake.close()


def test_an_unchanged_host_and_spec_pass_the_check(planned: tuple[FakeHostCli, Path, Path]) -> None:
    cli, _, plan_file = planned
    assert_valid_plan(plan_file.read_text())
    cli.check_saved_plan(plan_file)


def test_an_edited_spec_makes_the_plan_stale(planned: tuple[FakeHostCli, Path, Path]) -> None:
    cli, spec, plan_file = planned
    spec.write_text(SPEC + "# a comment is an edit too: the file is what was reviewed\n")
    with pytest.raises(StalePlan, match="the spec changed since the plan was made"):
        cli.check_saved_plan(plan_file)


def test_a_drifted_host_makes_the_plan_stale(planned: tuple[FakeHostCli, Path, Path]) -> None:
    cli, _, plan_file = planned
    cli.fake.set_linger("user", True)  # someone enabled linger by hand since
    cli.fake.set_operator("user")
    with pytest.raises(StalePlan) as caught:
        cli.check_saved_plan(plan_file)
    message = str(caught.value)
    assert "the host changed since the plan was made" in message
    assert "linger (no longer planned)" in message
    assert "tailscale.operator (no longer planned)" in message


def test_a_plan_for_another_host_is_refused(planned: tuple[FakeHostCli, Path, Path]) -> None:
    cli, _, plan_file = planned
    cli.host = replace(cli.host, hostname="vm103")
    with pytest.raises(StalePlan, match="Saved plan is for host vm102, this is vm103"):
        cli.check_saved_plan(plan_file)


def test_a_plan_with_errors_is_not_saved(tmp_path: Path) -> None:
    with FakeHost(tmp_path / "host") as fake:
        cli = FakeHostCli(fake)
        state = fake.home / ".clawdbot-ops"
        state.mkdir(parents=True)
        (state / "clawdbot.json").write_text("{ not json5")
        spec = tmp_path / "vm102.yaml"
        spec.write_text(SPEC)
        result = cli("plan", spec, "--out", tmp_path / "plan.json")
        assert result.exit_code == 1
        assert "the plan has errors;" in result.stderr and "was not written" in result.stderr
        assert not (tmp_path / "plan.json").exists()


def test_a_saved_plan_applies_once_then_is_stale(planned: tuple[FakeHostCli, Path, Path]) -> None:
    # What reconciler/app/applying.py does with a saved plan: check, then one pass.
    cli, _, plan_file = planned
    saved = load_saved_plan(plan_file)
    assert saved.spec_path is not None
    spec = load_spec(saved.spec_path)
    runner = drive.host_runner(cli.fake, cli.host)
    probed = probe_and_plan(spec, cli.host, runner, all_kinds())
    check_fresh(saved, spec.path, spec.sha256, cli.host.hostname, probed.plan, invoker="user")
    outcome = converge(
        probed.plan,
        lambda: probe_and_plan(spec, cli.host, runner, all_kinds()).plan,
        runner,
        max_passes=1,
    )
    assert outcome.ok and len(outcome.passes) == 1
    with pytest.raises(StalePlan, match="the host changed since the plan was made"):
        cli.check_saved_plan(plan_file)


def test_apply_of_a_saved_plan_runs_it_without_asking_then_refuses_it_as_stale(
    planned: tuple[FakeHostCli, Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    cli, _, plan_file = planned
    cli.fake.clear_calls()
    first = cli("apply", plan_file, "--no-color")  # no --yes: a reviewed plan asks nobody
    assert first.exit_code == 0, first.output
    assert "Apply:" in first.output and cli.fake.mutating_calls()
    cli.fake.clear_calls()
    again = cli("apply", plan_file, "--no-color")
    assert again.exit_code == 1
    assert "Saved plan is stale" in again.stderr
    assert cli.fake.mutating_calls() == []


def test_apply_refuses_a_saved_plan_after_drift_and_changes_nothing(
    planned: tuple[FakeHostCli, Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    cli, _, plan_file = planned
    cli.fake.set_operator("user")  # someone set the operator by hand since the review
    before = cli.fake.snapshot()
    cli.fake.clear_calls()
    for args in (("apply", plan_file), ("apply", plan_file, "--dry-run")):
        result = cli(*args)
        assert result.exit_code == 1, result.output
        assert "tailscale.operator (no longer planned)" in result.stderr
    assert cli.fake.mutating_calls() == []
    assert cli.fake.snapshot() == before


# --- the file is what was made (issue 11 #11) -------------------------------------------------------


def _edit(plan_file: Path, change: Any) -> None:
    doc = json.loads(plan_file.read_text())
    change(doc)
    plan_file.write_text(json.dumps(doc, indent=2))


def _first_command(doc: dict[str, Any]) -> dict[str, Any]:
    return next(op for a in doc["actions"] for op in a["operations"] if op["type"] == "command")


def test_visible_argv_edits_are_refused_and_nothing_runs(
    planned: tuple[FakeHostCli, Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The attack of issue 11 #11: every argv replaced, freshness kept, used to apply (rc 0)."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    cli, _, plan_file = planned
    original = _first_command(json.loads(plan_file.read_text()))["argv"]

    def pwn(doc: dict[str, Any]) -> None:
        for action in doc["actions"]:
            for op in action["operations"]:
                if op["type"] == "command":
                    op["argv"] = ["/bin/touch", str(tmp_path / "PWNED")]

    _edit(plan_file, pwn)
    with pytest.raises(EditedPlan, match="the plan file was edited after it was made"):
        cli.check_saved_plan(plan_file)
    before = cli.fake.snapshot()
    cli.fake.clear_calls()
    for args in (("apply", plan_file), ("apply", plan_file, "--dry-run")):
        result = cli(*args)
        assert result.exit_code == 1, result.output
        assert "the plan file was edited after it was made" in result.stderr
        assert '.operations[0].argv is ["/bin/touch"' in result.stderr
        # what the plan really runs: the argv as planned (the file shows it after `sudo -n`)
        assert original[:2] == ["sudo", "-n"] and json.dumps(original[2:]) in result.stderr
        assert "another order" not in result.stderr
    assert cli.fake.mutating_calls() == []
    assert cli.fake.snapshot() == before
    assert not (tmp_path / "PWNED").exists()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["actions"][0].update(kind="verify"), '.kind is "verify" in the file'),
        (lambda d: d["actions"][0].update(depends_on=["x"]), '.depends_on is ["x"] in the file'),
        (
            lambda d: _first_command(d).update(
                scope="system" if _first_command(d)["scope"] == "user" else "user"
            ),
            ".operations[0].scope is",
        ),
    ],
)
def test_every_visible_field_is_tied_to_the_fingerprint(
    planned: tuple[FakeHostCli, Path, Path], change: Any, message: str
) -> None:
    cli, _, plan_file = planned
    _edit(plan_file, change)
    with pytest.raises(EditedPlan) as caught:
        cli.check_saved_plan(plan_file)
    assert message in str(caught.value)


def test_wording_and_who_runs_it_are_not_edits(planned: tuple[FakeHostCli, Path, Path]) -> None:
    cli, _, plan_file = planned

    def reword(doc: dict[str, Any]) -> None:
        doc["actions"][0]["reason"] = "reworded"
        command = _first_command(doc)
        # as root would show it: without the `sudo -n` the user's plan has
        assert command["argv"][:2] == ["sudo", "-n"]
        command["argv"] = command["argv"][2:]
        command["description"] = "anything"

    _edit(plan_file, reword)
    cli.check_saved_plan(plan_file)


def test_a_tampered_fingerprint_is_an_edit_not_a_reordering(
    planned: tuple[FakeHostCli, Path, Path],
) -> None:
    cli, _, plan_file = planned
    _edit(plan_file, lambda d: d["freshness"].update(fingerprint="0" * 64))
    with pytest.raises(SavedPlanInvalid) as caught:
        load_saved_plan(plan_file)
    message = str(caught.value)
    assert "the plan file was edited after it was made" in message
    assert "freshness.fingerprint is 000000000000" in message and "another order" not in message
    result = cli("apply", plan_file)
    assert result.exit_code == 1 and "freshness.fingerprint is 000000000000" in result.stderr


def test_actions_shown_must_be_the_actions_fingerprinted(
    planned: tuple[FakeHostCli, Path, Path],
) -> None:
    _, _, plan_file = planned
    _edit(plan_file, lambda d: d["actions"].reverse())
    with pytest.raises(SavedPlanInvalid, match=r"edited after it was made: actions\[0\] shows"):
        load_saved_plan(plan_file)
    _edit(plan_file, lambda d: d["actions"].pop())
    with pytest.raises(SavedPlanInvalid, match="edited after it was made"):
        load_saved_plan(plan_file)


# --- documents that are not saved plans (issue 12 #4) ---------------------------------------------


def test_apply_names_the_document_it_was_given_and_what_to_do(
    planned: tuple[FakeHostCli, Path, Path], tmp_path: Path
) -> None:
    cli, spec, plan_file = planned
    plain = tmp_path / "plain.json"
    plain.write_text(cli("plan", spec, "--format", "json").stdout)
    snapshot = tmp_path / "snap.json"
    assert cli("probe", spec, "--out", snapshot).exit_code == 0
    truncated = tmp_path / "cut.json"
    truncated.write_text(plan_file.read_text()[:700])
    cases = {
        plain: "this is a plan without freshness data (from `plan --format json`?)",
        snapshot: "this is a snapshot (from `reconciler probe`), not a plan",
        truncated: "a plan document cut short",
    }
    for path, message in cases.items():
        assert reads_as_document(path)
        for args in (("apply", path), ("apply", path, "--dry-run")):
            result = cli(*args)
            assert result.exit_code == 1, result.output
            assert message in result.stderr
            assert "invalid spec" not in result.stderr and "apiVersion" not in result.stderr
            assert "reconciler plan SPEC" in result.stderr
    assert not reads_as_document(spec)


# --- the spec is found from any folder (issue 12 #5) -------------------------------------------------


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.email=t@example.org", "-c", "user.name=t", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


@pytest.fixture
def repo_plan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[FakeHostCli, Path, Path]:
    """A spec committed in a repository, planned with `--out` from the repository's top."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    fake = FakeHost(tmp_path / "host")
    fake.set_node("v22.12.0")
    fake.set_gateway("2026.1.20")
    repo = tmp_path / "ci" / "ops"
    (repo / "specs").mkdir(parents=True)
    (repo / "specs" / "vm102.yaml").write_text(SPEC)
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "spec")
    cli = FakeHostCli(fake)
    plan_file = tmp_path / "plan.json"
    monkeypatch.chdir(repo)
    result = cli("plan", "specs/vm102.yaml", "--out", plan_file)
    assert result.exit_code == 0, result.output
    yield cli, repo, plan_file
    fake.close()


def test_a_saved_plan_names_its_spec_in_the_repository(
    repo_plan: tuple[FakeHostCli, Path, Path],
) -> None:
    _, repo, plan_file = repo_plan
    assert_valid_plan(plan_file.read_text())
    location = load_saved_plan(plan_file).freshness.spec_location
    assert location is not None
    root = _git(repo, "rev-list", "--max-parents=0", "HEAD").strip()
    assert location == SpecLocation(str(repo / "specs/vm102.yaml"), "specs/vm102.yaml", root)


def test_apply_finds_the_spec_in_another_clone_from_any_folder_in_it(
    repo_plan: tuple[FakeHostCli, Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Saved in CI, applied on the host: another clone, another folder, the CI path gone."""
    cli, repo, plan_file = repo_plan
    monkeypatch.chdir(repo / "specs")  # another folder of the same clone: the same plan
    result = cli("apply", plan_file, "--dry-run")
    assert result.exit_code == 0, result.output
    clone = tmp_path / "host-clone"
    _git(tmp_path, "clone", "-q", str(repo), str(clone))
    shutil.rmtree(repo.parent)  # the CI checkout is gone
    (clone / "docs").mkdir()
    monkeypatch.chdir(clone / "docs")
    saved = load_saved_plan(plan_file)
    assert saved_spec_path(saved) == clone / "specs/vm102.yaml"
    result = cli("apply", plan_file, "--dry-run")
    assert "cannot find the spec" not in result.stderr and "cannot read" not in result.stderr
    # The spec is the reviewed one (same bytes); the timer now names this clone's spec, so the
    # plan differs only there, and apply says so instead of running it.
    assert result.exit_code == 1, result.output
    assert "reconcile.timer.service (changed)" in result.stderr


def test_apply_from_elsewhere_says_which_paths_it_tried(
    repo_plan: tuple[FakeHostCli, Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli, repo, plan_file = repo_plan
    other = tmp_path / "other-repo"
    other.mkdir()
    _git(other, "init", "-q")
    _git(other, "commit", "-q", "--allow-empty", "-m", "unrelated")
    outside = tmp_path / "plain-folder"
    outside.mkdir()
    (repo / "specs" / "vm102.yaml").rename(repo / "specs" / "moved.yaml")
    for folder, why in ((other, "another repository"), (outside, "is not in one")):
        monkeypatch.chdir(folder)
        result = cli("apply", plan_file)
        assert result.exit_code == 1
        message = result.stderr
        assert "cannot find the spec this plan was made from; tried:" in message
        assert why in message
        assert f"{repo / 'specs/vm102.yaml'} (where the plan was made): not a file" in message
        assert f"{folder / 'specs/vm102.yaml'} (as named, relative to {folder})" in message
    # A legacy plan (no spec_location) is still found relative to the folder it is applied in.
    (repo / "specs" / "moved.yaml").rename(repo / "specs" / "vm102.yaml")
    doc = json.loads(plan_file.read_text())
    del doc["freshness"]["spec_location"]
    plan_file.write_text(json.dumps(doc))
    assert saved_spec_path(load_saved_plan(plan_file), repo) == repo / "specs/vm102.yaml"


def test_a_shown_argv_may_carry_the_prefix_of_whoever_applies() -> None:
    from reconciler.review.saved_plan import _same_command

    argv = ["systemctl", "--user", "start", "x.service"]
    env = ["env", "HOME=/home/user", "DBUS_SESSION_BUS_ADDRESS=(sensitive)"]
    assert _same_command(argv, argv)
    assert _same_command(["sudo", "-n", *argv], argv)
    assert _same_command(["runuser", "-u", "user", "--", *env, *argv], argv)
    assert _same_command(["sudo", "-n", "-u", "user", "--", *env, *argv], argv)  # an admin
    # Anything else in front is something else to run.
    assert not _same_command(
        ["sudo", "-n", "-u", "user", "--", "env", "sh", "-c", "x", *argv], argv
    )
    assert not _same_command(["sudo", "-u", "user", "--", *env, *argv], argv)
    assert not _same_command(["sudo", "-n", "-u", "user", *argv], argv)

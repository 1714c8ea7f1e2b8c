"""Git revisions: the committed spec is applied, never uncommitted edits; bad revisions are not."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from reconciler.app.unattended import unattended_apply
from reconciler.shell.git import SourceError, checkout, git_runner, work_tree
from reconciler.shell.runner import HostRunner
from reconciler.unattended.runs import ApplyOutcome, read_records

from .helpers import BAD_SPEC_TEXT, SPEC_TEXT, Recorder, write_spec

EDITED = SPEC_TEXT.replace("18789", "18889")


@pytest.fixture(autouse=True)
def _git_identity(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key, value in {
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.invalid",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.invalid",
        "GIT_CONFIG_GLOBAL": str(tmp_path / "gitconfig"),
        "GIT_CONFIG_NOSYSTEM": "1",
    }.items():
        monkeypatch.setenv(key, value)


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(cwd), *args], check=True, capture_output=True, text=True
    ).stdout.strip()


def repo(tmp_path: Path, text: str = SPEC_TEXT) -> tuple[Path, Path, str]:
    clone = tmp_path / "clone"
    clone.mkdir()
    git(clone, "init", "-q", "-b", "main")
    spec = write_spec(clone / "hosts", text)
    git(clone, "add", ".")
    git(clone, "commit", "-q", "-m", "spec")
    return clone, spec, git(clone, "rev-parse", "HEAD")


def run(tmp_path: Path, spec: Path, do_apply: Recorder, ref: str = "main") -> int:
    return unattended_apply(
        spec, lock_timeout=0, non_interactive=True, log_format="text", do_apply=do_apply,
        git_ref=ref, state=tmp_path / "state",
    )  # fmt: skip


def test_committed_spec_is_applied_and_uncommitted_edits_ignored(tmp_path: Path) -> None:
    clone, spec, commit = repo(tmp_path)
    spec.write_text(EDITED)  # an uncommitted edit
    do_apply = Recorder()
    assert run(tmp_path, spec, do_apply) == 0
    (applied,) = do_apply.specs
    assert applied.profiles[0].port == 18789  # as committed
    assert applied.path == clone / "hosts/vm102.yaml"  # where it lives, not a temp file
    (rec,) = read_records(tmp_path / "state")
    assert rec.result == "converged"
    assert rec.last_attempted_revision == rec.last_applied_revision == f"main@sha1:{commit}"
    assert rec.git_commit == commit and rec.git_dirty is True
    assert rec.spec_path == str(clone / "hosts/vm102.yaml")
    assert rec.source == f"{clone}@main"


def test_invalid_spec_at_the_revision_is_not_applied(tmp_path: Path) -> None:
    clone, spec, good = repo(tmp_path)
    assert run(tmp_path, spec, Recorder()) == 0
    spec.write_text(BAD_SPEC_TEXT)
    git(clone, "commit", "-q", "-am", "typo")
    bad = git(clone, "rev-parse", "HEAD")
    spec.write_text(SPEC_TEXT)  # fixed, but only in the work tree: still not what is applied
    do_apply = Recorder()
    assert run(tmp_path, spec, do_apply) == 1
    assert do_apply.specs == []
    last = read_records(tmp_path / "state")[-1]
    assert last.result == "invalid-spec"
    assert (
        "colour: unknown field" in last.reason
        and f"main@sha1:{bad}:hosts/vm102.yaml" in last.reason
    )
    assert last.last_attempted_revision == f"main@sha1:{bad}"
    assert last.last_applied_revision == f"main@sha1:{good}"  # carried over


def test_the_remote_ref_is_fetched_and_wins(tmp_path: Path) -> None:
    upstream, _, _ = repo(tmp_path)
    clone = tmp_path / "checkout"
    subprocess.run(["git", "clone", "-q", str(upstream), str(clone)], check=True)
    upstream_spec = upstream / "hosts/vm102.yaml"
    upstream_spec.write_text(EDITED)
    git(upstream, "commit", "-q", "-am", "move the port")
    pushed = git(upstream, "rev-parse", "HEAD")
    do_apply = Recorder()
    assert run(tmp_path, clone / "hosts/vm102.yaml", do_apply) == 0
    assert do_apply.specs[0].profiles[0].port == 18889
    assert read_records(tmp_path / "state")[-1].last_applied_revision == f"main@sha1:{pushed}"


def test_an_unreachable_remote_falls_back_to_what_was_fetched(tmp_path: Path) -> None:
    clone, spec, commit = repo(tmp_path)
    git(clone, "remote", "add", "origin", str(tmp_path / "gone"))
    runner = git_runner(spec)
    revision = checkout(spec, "main", runner.run)
    assert (
        revision.commit == commit
        and revision.fetch_error
        and "git fetch origin" in revision.fetch_error
    )


def test_a_failed_run_keeps_the_last_applied_revision(tmp_path: Path) -> None:
    _clone, spec, commit = repo(tmp_path)
    assert run(tmp_path, spec, Recorder(ApplyOutcome("failed", failed=1, reason="boom"))) == 1
    rec = read_records(tmp_path / "state")[-1]
    assert (rec.result, rec.last_applied_revision) == ("failed", None)
    assert run(tmp_path, spec, Recorder()) == 0
    assert run(tmp_path, spec, Recorder(ApplyOutcome("not-converged", reason="pending"))) == 2
    assert read_records(tmp_path / "state")[-1].last_applied_revision == f"main@sha1:{commit}"


def test_unknown_ref_or_missing_file_is_a_recorded_failure(tmp_path: Path) -> None:
    clone, spec, _ = repo(tmp_path)
    assert run(tmp_path, spec, Recorder(), ref="nope") == 1
    assert "does not name a commit" in read_records(tmp_path / "state")[-1].reason
    other = write_spec(clone / "hosts", name="new.yaml")  # never committed
    assert run(tmp_path, other, Recorder()) == 1
    assert "does not exist at main@sha1:" in read_records(tmp_path / "state")[-1].reason
    with pytest.raises(SourceError, match="not inside a git work tree"):
        checkout(write_spec(tmp_path / "plain"), "main", git_runner(tmp_path).run)


def test_a_plain_run_records_the_work_tree_commit(tmp_path: Path) -> None:
    _clone, spec, commit = repo(tmp_path)
    state = tmp_path / "state"
    unattended_apply(
        spec,
        lock_timeout=0,
        non_interactive=False,
        log_format="text",
        do_apply=Recorder(),
        state=state,
    )
    rec = read_records(state)[-1]
    assert (rec.git_commit, rec.git_dirty, rec.last_attempted_revision) == (commit, False, None)
    outside = write_spec(tmp_path / "plain")
    unattended_apply(
        outside,
        lock_timeout=0,
        non_interactive=False,
        log_format="text",
        do_apply=Recorder(),
        state=state,
    )
    assert read_records(state)[-1].git_commit is None


def test_work_tree_finds_the_path_inside_the_clone(tmp_path: Path) -> None:
    clone, spec, _ = repo(tmp_path)
    runner: HostRunner = git_runner(spec)
    tree = work_tree(spec, runner.run)
    assert tree is not None and (tree.top, tree.relpath) == (clone, "hosts/vm102.yaml")

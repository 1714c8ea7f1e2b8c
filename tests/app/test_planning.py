"""The read-only use cases through the CLI: `validate -`, `--out` checks, `plan` exit codes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from fakehost import FakeHost
from review_cli import SPEC, FakeHostCli

from reconciler.app.context import AppContext
from reconciler.cli import cli


@pytest.fixture
def host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHostCli]:
    monkeypatch.chdir(tmp_path)
    fake = FakeHost(tmp_path / "host")
    fake.set_node("v22.12.0")
    fake.set_gateway("2026.1.20")
    Path("vm102.yaml").write_text(SPEC)
    yield FakeHostCli(fake)
    fake.close()


def test_validate_reads_standard_input() -> None:
    ok = CliRunner().invoke(cli, ["validate", "-"], input=SPEC)
    assert (ok.exit_code, ok.stdout) == (0, "<stdin>: ok\n")
    bad = CliRunner().invoke(cli, ["validate", "-"], input=SPEC + "colour: blue\n")
    assert bad.exit_code == 1
    assert bad.stderr.startswith("<stdin>:") and "colour: unknown field" in bad.stderr


def test_validate_stdin_is_bounded() -> None:
    read: list[int] = []

    def stdin(limit: int) -> bytes:
        read.append(limit)
        return b"#" * limit

    result = CliRunner().invoke(cli, ["validate", "-"], obj=AppContext(read_stdin=stdin))
    assert result.exit_code == 1 and "too large" in result.stderr
    assert read == [1024 * 1024 + 1]


@pytest.mark.parametrize("command", ["plan", "probe"])
def test_out_into_a_missing_folder_is_refused_before_probing(
    host: FakeHostCli, command: str
) -> None:
    result = host(command, "vm102.yaml", "--out", "no/such/plan.json")
    assert result.exit_code == 1
    assert result.stderr == (
        "error: cannot write no/such/plan.json: the folder no/such does not exist; create it "
        "first (mkdir -p no/such) or name a file in an existing folder\n"
    )
    assert not Path("no").exists() and host.fake.calls() == []


@pytest.mark.parametrize("command", ["plan", "probe"])
def test_out_under_a_file_is_refused_without_a_traceback(host: FakeHostCli, command: str) -> None:
    Path("taken").write_text("mine\n")
    result = host(command, "vm102.yaml", "--out", "taken/plan.json")
    assert result.exit_code == 1
    assert result.stderr == (
        "error: cannot write taken/plan.json: taken is a file, not a folder; name a file in a "
        "folder\n"
    )
    assert Path("taken").read_text() == "mine\n"


def test_out_that_is_a_folder_is_refused(host: FakeHostCli) -> None:
    Path("dir").mkdir()
    result = host("probe", "vm102.yaml", "--out", "dir")  # click checks this one: a usage error
    assert result.exit_code == 64 and "'dir' is a directory" in result.stderr


def test_plan_detailed_exit_code_counts_blocked_steps_as_differences(host: FakeHostCli) -> None:
    # The fake host has no linger and no operator: the plan has steps (2).
    changes = host("plan", "vm102.yaml", "--detailed-exitcode")
    assert changes.exit_code == 2 and "Plan: " in changes.stdout
    without = host("plan", "vm102.yaml")
    assert without.exit_code == 0


# --- issue 22: --out replaced a real /dev/full; it writes only a new or a regular file ----------


def _plant(kind: str, path: Path, tmp_path: Path) -> None:
    import os
    import stat

    if kind == "device":
        if os.geteuid() != 0:
            pytest.skip("making a device node needs root")
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 7))  # what /dev/full is
    elif kind == "fifo":
        os.mkfifo(path)
    else:
        (tmp_path / "victim").write_text("keep me\n")
        path.symlink_to(tmp_path / "victim")


@pytest.mark.parametrize("kind", ["device", "fifo", "symlink"])
@pytest.mark.parametrize("command", ["plan", "probe"])
def test_out_never_replaces_a_device_node_fifo_or_symlink(
    host: FakeHostCli, tmp_path: Path, command: str, kind: str
) -> None:
    import os
    import stat

    target = Path("full")
    _plant(kind, target, tmp_path)
    before = os.lstat(target)
    result = host(command, "vm102.yaml", "--out", "full")
    assert result.exit_code == 1
    what = {"device": "a character device", "fifo": "a FIFO (named pipe)",
            "symlink": "a symbolic link"}[kind]  # fmt: skip
    assert result.stderr.startswith(f"error: cannot write full: it is {what}, ")
    assert "name another path" in result.stderr and "Traceback" not in result.output
    after = os.lstat(target)
    assert (after.st_ino, stat.S_IFMT(after.st_mode)) == (
        before.st_ino,
        stat.S_IFMT(before.st_mode),
    )
    if kind == "symlink":
        assert (tmp_path / "victim").read_text() == "keep me\n"


def test_out_swapped_for_a_fifo_after_the_check_is_still_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The check before probing and the one right before the rename: a path swapped between them
    # is refused by the second, and no temp file is left behind.
    import os
    import stat

    import reconciler.shell.files as files

    path = tmp_path / "out.json"
    real_sweep = files.sweep_temp_files

    def sweep_and_swap(directory: Path, target: str) -> list[str]:
        os.mkfifo(path)  # swapped in after write_out's own check
        return real_sweep(directory, target)

    monkeypatch.setattr(files, "sweep_temp_files", sweep_and_swap)
    with pytest.raises(files.OutRefused, match="it is a FIFO"):
        files.write_out(path, "{}", 0o644)
    assert stat.S_ISFIFO(os.lstat(path).st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]
    monkeypatch.undo()
    path.unlink()
    files.write_out(path, "{}\n", 0o644)  # a new file, then a regular one: written
    files.write_out(path, "{}\n", 0o644)
    assert stat.S_ISREG(os.lstat(path).st_mode) and path.read_text() == "{}\n"

"""Metrics textfile: the exposition format (checked by the real `promtool check metrics`), written
atomically by every apply with `metrics.textfile_dir`, keeping the last success across failures."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from fakehost import FakeHost
from review_cli import SPEC, FakeHostCli

from reconciler.cli import cli
from reconciler.unattended.metrics import RunMetrics, previous_success, render, write

ME = (os.getuid(), os.getgid())
SAMPLE = RunMetrics(
    finished_s=1795862400.5,
    duration_s=2.25,
    result="not-converged",
    drift=3,
    blocked=1,
    failed=0,
    last_success_s=1795860000,
    gateway_up={"personal": True, 'we"ird\\name': False},
)


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian: prometheus)")
def test_promtool_accepts_the_textfile() -> None:
    checked = subprocess.run(
        ["promtool", "check", "metrics"], input=render(SAMPLE), capture_output=True, text=True
    )
    assert (checked.returncode, checked.stdout, checked.stderr) == (0, "", "")


def test_promtool_would_catch_a_broken_file() -> None:
    if shutil.which("promtool") is None:
        pytest.skip("promtool (Debian: prometheus)")
    broken = render(SAMPLE).replace("# TYPE gateway_up gauge\n", "# TYPE gateway_up gauge\n{")
    checked = subprocess.run(["promtool", "check", "metrics"], input=broken, text=True,
                             capture_output=True)  # fmt: skip
    assert checked.returncode != 0


def test_render_values_and_escaping() -> None:
    text = render(SAMPLE)
    assert "reconciler_last_run_timestamp_seconds 1795862400.5\n" in text
    assert "reconciler_last_success_timestamp_seconds 1795860000\n" in text
    assert "reconciler_drift_actions 3\n" in text
    assert "reconciler_blocked_actions 1\n" in text
    assert "reconciler_failed_actions 0\n" in text
    assert "reconciler_run_duration_seconds 2.25\n" in text
    assert 'reconciler_last_run_result{result="not-converged"} 1\n' in text
    assert 'gateway_up{profile="personal"} 1\n' in text
    assert 'gateway_up{profile="we\\"ird\\\\name"} 0\n' in text
    assert previous_success(text) == 1795860000
    never = render(replace(SAMPLE, last_success_s=None))
    assert "reconciler_last_success_timestamp_seconds" not in never


def test_write_is_atomic_and_readable_by_node_exporter(tmp_path: Path) -> None:
    old = tmp_path / "reconciler.prom"
    old.write_text("old\n")
    inode = old.stat().st_ino
    path = write(tmp_path, SAMPLE, ME)
    assert path == old and path.read_text() == render(SAMPLE)
    assert path.stat().st_ino != inode  # a new file renamed over the old one, never rewritten
    assert path.stat().st_mode & 0o777 == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["reconciler.prom"]  # no temp left


@pytest.fixture
def host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[FakeHostCli, Path]]:
    monkeypatch.chdir(tmp_path)
    fake = FakeHost(tmp_path / "host")
    fake.set_node("v22.12.0")
    fake.set_gateway("2026.1.24-3")
    fake.set_tailscale(https=True)
    fake.set_linger("user", True)
    textfiles = tmp_path / "node-exporter"
    textfiles.mkdir()
    Path("vm102.yaml").write_text(SPEC + f"metrics:\n  textfile_dir: {textfiles}\n")
    yield FakeHostCli(fake), textfiles
    fake.close()


def apply(cli_: FakeHostCli, tmp_path: Path, *args: str) -> int:
    return apply_result(cli_, tmp_path, *args).exit_code


def apply_result(cli_: FakeHostCli, tmp_path: Path, *args: str) -> Result:
    listening = {int(e["port"]) for e in cli_.fake.listeners()}
    ctx = replace(
        cli_.context(),
        state_dir=lambda: tmp_path / "state",
        port_answers=lambda port: (
            port in {int(e["port"]) for e in cli_.fake.listeners()} or port in listening
        ),
    )
    return CliRunner().invoke(cli, ["apply", "vm102.yaml", "--yes", *args], obj=ctx)


def test_every_apply_writes_the_metrics(host: tuple[FakeHostCli, Path], tmp_path: Path) -> None:
    cli_, textfiles = host
    assert apply(cli_, tmp_path) == 0
    first = (textfiles / "reconciler.prom").read_text()
    # A fresh host: the plan had 15 steps to add and 2 to change (health checks are not drift).
    assert "reconciler_drift_actions 17\n" in first
    assert 'gateway_up{profile="ops"} 1\n' in first and 'gateway_up{profile="personal"} 1\n' in (
        first
    )
    success = previous_success(first)
    assert success is not None
    # Break the gateway's CLI: the next run fails, the last success stays the first run's.
    cli_.fake.stop_unit("clawdbot-gateway-ops.service")
    cli_.fake.fail_mutating_call()
    assert apply(cli_, tmp_path) == 1
    second = (textfiles / "reconciler.prom").read_text()
    assert 'reconciler_last_run_result{result="failed"} 1\n' in second
    assert "reconciler_failed_actions 1\n" in second
    assert 'gateway_up{profile="ops"} 0\n' in second
    assert previous_success(second) == success


def test_an_unwritable_metrics_dir_is_a_warning(
    host: tuple[FakeHostCli, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The directory is fine as desired state (the user's, 0755), but the write fails (a full
    # disk, a read-only mount): the run's result stays the host's.
    cli_, textfiles = host

    def refused(directory: Path, values: object, owner: object) -> Path:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("reconciler.unattended.metrics.write", refused)
    result = apply_result(cli_, tmp_path)
    assert result.exit_code == 0  # the host converged: that is the run's result
    assert f"could not write the metrics file in {textfiles}: Permission denied" in result.output
    assert list(textfiles.iterdir()) == []


def test_a_file_where_the_metrics_dir_should_be_is_refused(
    host: tuple[FakeHostCli, Path], tmp_path: Path
) -> None:
    # Since the directory is desired state (reconciler/kinds/metrics.py), a file in its place is
    # a plan error naming it, as for a profile's state directory; nothing is touched.
    cli_, textfiles = host
    textfiles.rmdir()
    textfiles.write_text("a file where the folder should be\n")
    result = apply_result(cli_, tmp_path)
    assert result.exit_code == 1
    assert f"metrics.textfile_dir: {textfiles} is not a directory" in result.output
    assert textfiles.read_text() == "a file where the folder should be\n"


def test_backup_textfile_has_one_sample_per_profile_with_a_success() -> None:
    from reconciler.unattended.metrics import render_backup

    text = render_backup({"personal": 1795862400.5, 'o"ps': 1795862401})
    assert text == (
        "# HELP reconciler_backup_last_success_timestamp_seconds When the profile's last backup "
        "succeeded (Unix time).\n"
        "# TYPE reconciler_backup_last_success_timestamp_seconds gauge\n"
        'reconciler_backup_last_success_timestamp_seconds{profile="o\\"ps"} 1795862401\n'
        'reconciler_backup_last_success_timestamp_seconds{profile="personal"} 1795862400.5\n'
    )
    if shutil.which("promtool") is not None:
        checked = subprocess.run(
            ["promtool", "check", "metrics"], input=text, capture_output=True, text=True
        )
        assert (checked.returncode, checked.stdout, checked.stderr) == (0, "", "")


# --- issue 22: the folder is the user's to write; root writes nothing through their paths ---------


def test_a_symlinked_metrics_dir_gets_no_file_though_the_plan_errored(
    host: tuple[FakeHostCli, Path], tmp_path: Path
) -> None:
    cli_, textfiles = host
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    textfiles.rmdir()
    textfiles.symlink_to(elsewhere)
    result = apply_result(cli_, tmp_path)
    assert result.exit_code == 1
    assert f"could not write the metrics file in {textfiles}" in result.output
    assert list(elsewhere.iterdir()) == []


@pytest.mark.parametrize("plant", ["fifo", "dev-zero"])
def test_a_fifo_or_a_link_to_dev_zero_as_the_file_neither_hangs_nor_reads_unbounded(
    host: tuple[FakeHostCli, Path], tmp_path: Path, plant: str
) -> None:
    import time

    cli_, textfiles = host
    path = textfiles / "reconciler.prom"
    if plant == "fifo":
        os.mkfifo(path)
    else:
        path.symlink_to("/dev/zero")
    started = time.monotonic()
    assert apply(cli_, tmp_path) == 0
    assert time.monotonic() - started < 60
    info = path.lstat()
    assert stat.S_ISREG(info.st_mode) and "reconciler_drift_actions" in path.read_text()
    assert stat.S_ISCHR(os.stat("/dev/zero").st_mode)


def test_the_file_is_written_through_the_folder_it_was_opened_as(tmp_path: Path) -> None:
    # A symlink anywhere on the way, or a folder another account controls, is refused.
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with pytest.raises(OSError, match="is a symbolic link, not a directory"):
        write(tmp_path / "link" / "deeper", SAMPLE, ME)
    with pytest.raises(OSError, match="is a symbolic link, not a directory"):
        write(tmp_path / "link", SAMPLE, ME)
    assert list((tmp_path / "real").iterdir()) == []
    loose = tmp_path / "loose"
    loose.mkdir()
    loose.chmod(0o777)
    with pytest.raises(OSError, match="is writable by every user"):
        write(loose, SAMPLE, ME)


@pytest.mark.skipif(os.geteuid() != 0, reason="acts as another user: needs root")
def test_root_writes_the_metrics_as_the_specs_user(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, local_user: object
) -> None:
    from reconciler.app.unattended import unattended_apply
    from reconciler.core.host import Account
    from reconciler.unattended.runs import ApplyOutcome

    assert isinstance(local_user, Account)
    textfiles = tmp_path / "textfiles"
    textfiles.mkdir()
    os.chown(textfiles, 0, local_user.gid)
    textfiles.chmod(0o775)
    spec = tmp_path / "vm102.yaml"
    spec.write_text(
        f"apiVersion: reconciler/v1\nhost:\n  name: vm102\n  user: {local_user.name}\n"
        f"profiles:\n  personal:\n    port: 18789\nmetrics:\n  textfile_dir: {textfiles}\n"
    )
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    code = unattended_apply(
        spec,
        lock_timeout=0,
        non_interactive=True,
        log_format="text",
        do_apply=lambda spec, log: ApplyOutcome("converged"),  # type: ignore[arg-type,return-value]
    )
    assert code == 0
    info = (textfiles / "reconciler.prom").stat()
    assert (info.st_uid, info.st_mode & 0o777) == (local_user.uid, 0o644)

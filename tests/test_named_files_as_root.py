"""Files named on root's command line (spec, saved plan, snapshot, fleet file) are read through
a user's files only as far as that user could read (issue 22; bounded.py's module docstring).

The attack, with a real second account: the user makes `~/host.yaml` (or the folder it is in) a
link to a file only root may read, and waits for the admin's `sudo reconciler validate|plan|diff
~user/host.yaml`. Root followed the link and printed what it found there in its error messages
(`stolen_field` below, a field of a root-only YAML file). Now the walk is refused before root
opens that file, and the message says why and what to do."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from real_users import as_user, real_user  # noqa: F401  (the fixture)
from unattended.helpers import SPEC_TEXT

from reconciler.bounded import InputRefused, read_bounded
from reconciler.core.host import Account

SECRET = "root-only-value-4711"
ROOT_ONLY_YAML = f"apiVersion: reconciler/v1\nstolen_field: {SECRET}\n"
ROOT_ONLY_JSON = json.dumps({"kind": "reconciler-snapshot", "stolen_field": SECRET})


def reconciler(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reconciler", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )


@pytest.fixture
def vault(tmp_path: Path) -> Path:
    """A folder only root may enter (like /root), holding a YAML and a JSON file."""
    folder = tmp_path / "root-only"
    folder.mkdir(mode=0o700)
    (folder / "secret.yaml").write_text(ROOT_ONLY_YAML)
    (folder / "secret.json").write_text(ROOT_ONLY_JSON)
    return folder


def _refusal(user: Account) -> str:
    return f"leads from {user.name}'s files into "


def _assert_refused(result: subprocess.CompletedProcess[str], user: Account) -> None:
    shown = result.stdout + result.stderr
    assert result.returncode == 1, shown
    assert _refusal(user) in shown, shown
    assert f"run the command as {user.name}" in shown
    assert SECRET not in shown and "stolen_field" not in shown, shown
    assert "Traceback" not in shown


@pytest.mark.parametrize("how", ["file link", "folder link", "relative link", "link chain"])
@pytest.mark.parametrize("command", ["validate", "plan", "diff"])
def test_a_spec_the_user_links_to_a_root_only_file_is_refused_unread(
    real_user: Account,  # noqa: F811
    vault: Path,
    how: str,
    command: str,
) -> None:
    home = real_user.home
    if how == "file link":
        as_user(real_user, "ln", "-s", str(vault / "secret.yaml"), "host.yaml")
        spec = home / "host.yaml"
    elif how == "folder link":
        as_user(real_user, "ln", "-s", str(vault), "hostspec")
        spec = home / "hostspec" / "secret.yaml"
    elif how == "relative link":  # up out of the home, physically
        as_user(real_user, "ln", "-s", f"../{vault.name}/secret.yaml", "host.yaml")
        spec = home / "host.yaml"
    else:  # a link to the user's own link to the vault
        as_user(real_user, "ln", "-s", str(vault / "secret.yaml"), ".hidden")
        as_user(real_user, "ln", "-s", str(home / ".hidden"), "host.yaml")
        spec = home / "host.yaml"
    args = {
        "validate": ("validate", str(spec)),
        "plan": ("plan", str(spec), "--host-check=off", "--target", "local"),
        "diff": ("diff", str(spec), str(spec)),
    }[command]
    _assert_refused(reconciler(*args), real_user)


def test_a_relative_spec_path_from_the_users_home_is_walked_the_same(
    real_user: Account,  # noqa: F811
    vault: Path,
) -> None:
    as_user(real_user, "ln", "-s", str(vault / "secret.yaml"), "host.yaml")
    _assert_refused(reconciler("validate", "host.yaml", cwd=real_user.home), real_user)


def test_a_saved_plan_snapshot_or_fleet_file_linked_to_root_only_files_is_refused(
    real_user: Account,  # noqa: F811
    vault: Path,
    tmp_path: Path,
) -> None:
    spec = tmp_path / "vm102.yaml"  # root's own spec: only the other file is the user's
    spec.write_text(SPEC_TEXT)
    as_user(real_user, "ln", "-s", str(vault / "secret.json"), "snap.json")
    as_user(real_user, "ln", "-s", str(vault / "secret.json"), "plan.json")
    as_user(real_user, "ln", "-s", str(vault / "secret.yaml"), "fleet.yaml")
    home = real_user.home
    snapshot = reconciler("plan", str(spec), "--against", str(home / "snap.json"))
    _assert_refused(snapshot, real_user)
    assert "cannot read the snapshot" in snapshot.stderr
    _assert_refused(reconciler("apply", str(home / "plan.json"), "--dry-run"), real_user)
    _assert_refused(reconciler("validate", str(home / "fleet.yaml")), real_user)


def test_what_the_user_may_read_anyway_is_read_through_their_links(
    real_user: Account,  # noqa: F811
    tmp_path: Path,
) -> None:
    """No loss for the honest layouts: the user's own spec (by any path, absolute links
    included), and a link to a spec every account may read (/etc/reconciler/host.yaml)."""
    own = real_user.home / "repo"
    as_user(real_user, "mkdir", "repo")
    (own / "host.yaml").write_text(SPEC_TEXT)
    os.chown(own / "host.yaml", real_user.uid, real_user.gid)
    as_user(real_user, "ln", "-s", str(own / "host.yaml"), "absolute.yaml")
    as_user(real_user, "ln", "-s", "repo/host.yaml", "relative.yaml")
    public = tmp_path / "etc-reconciler"
    public.mkdir(mode=0o755)
    (public / "host.yaml").write_text(SPEC_TEXT)
    (public / "host.yaml").chmod(0o644)
    as_user(real_user, "ln", "-s", str(public / "host.yaml"), "system.yaml")
    for name in ("repo/host.yaml", "absolute.yaml", "relative.yaml", "system.yaml"):
        result = reconciler("validate", str(real_user.home / name))
        assert result.returncode == 0, result.stderr
    # The same public file, once root takes it away from others (0640): refused.
    (public / "host.yaml").chmod(0o640)
    _assert_refused(reconciler("validate", str(real_user.home / "system.yaml")), real_user)


def test_a_fifo_or_device_the_user_puts_in_place_is_never_opened(
    real_user: Account,  # noqa: F811
) -> None:
    as_user(real_user, "mkfifo", "host.yaml")  # opening it for reading would block without a writer
    with pytest.raises(InputRefused, match="is a FIFO"):
        read_bounded(real_user.home / "host.yaml", 1 << 20)
    as_user(real_user, "ln", "-s", "/dev/zero", "zero.yaml")  # root's device: never reached
    with pytest.raises(InputRefused, match=_refusal(real_user)):
        read_bounded(real_user.home / "zero.yaml", 1 << 20)


def test_root_reads_its_own_paths_and_links_as_before(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("the walk is root's")
    (tmp_path / "a.yaml").write_text("x: 1\n")
    (tmp_path / "link.yaml").symlink_to(tmp_path / "a.yaml")
    (tmp_path / "loop").symlink_to("loop")
    assert read_bounded(tmp_path / "link.yaml", 100) == b"x: 1\n"
    with pytest.raises(OSError, match="Too many levels"):
        read_bounded(tmp_path / "loop", 100)
    with pytest.raises(FileNotFoundError):
        read_bounded(tmp_path / "missing.yaml", 100)
    with pytest.raises(InputRefused, match="is a directory"):
        read_bounded(tmp_path, 100)

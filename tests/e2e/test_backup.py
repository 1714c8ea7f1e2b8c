"""Issue 14 against real systemd and the real restic (the host's /usr/bin/restic bound read-only,
as the harness binds node): `apply` of a spec with a backup section initialises the repository
and installs the backup units; the backup timer runs `reconciler backup run` by itself with the
gateway stopped around the copy; a second run is incremental; a wiped state directory comes back
byte-identical (content, modes, owners) with `backup restore --in-place` and the gateway answers
again; `backup verify` passes, and fails loudly once a pack file is corrupted. The password
never reaches the journal or any file the reconciler writes."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from .harness import Container
from .images import VENV
from .test_scenarios import (
    HOME,
    PORTS,
    SPEC_PATH,
    answers,
    apply,
    install_spec,
    reconciler,
    show,
)

RESTIC = shutil.which("restic")
BACKUP_SPEC = """
backup:
  repository: ~/backups/gateway
  password_file: ~/.config/restic/password
  schedule: 20s
  profiles: [ops]
  consistency: stop
"""
STATE = f"{HOME}/.clawdbot-ops"
RECORDS = f"{HOME}/.local/state/reconciler/backups.jsonl"
CORRUPT = """
import sys
path = sys.argv[1]
data = bytearray(open(path, "rb").read())
for i in range(64, len(data) - 64, 97):
    data[i] ^= 0xFF
open(path, "wb").write(bytes(data))
"""
TREE = (
    f"cd {STATE} && find . -path ./logs -prune -o -printf '%p %m %u:%g %s\\n' | sort && "
    "find . -type f -not -path './logs/*' -exec sha256sum {} + | sort -k2"
)


def records(c: Container) -> list[dict[str, Any]]:
    if not c.exists(RECORDS):
        return []
    return [json.loads(line) for line in c.read_file(RECORDS).splitlines() if line.strip()]


def test_timer_backup_incremental_restore_in_place_and_verify(
    make_container: Any,
) -> None:
    if RESTIC is None:
        if os.environ.get("RECONCILER_E2E_REQUIRED"):
            pytest.fail("restic is required here (apt-get install restic)")
        pytest.skip("restic is not installed here (apt-get install restic)")
    c: Container = make_container(binds_ro=[(Path(RESTIC).resolve(), "/usr/bin/restic")])
    install_spec(c)
    apply(c)
    answers(c, PORTS["ops"])
    password = "pw-" + secrets.token_hex(16)
    c.write_file(f"{HOME}/.config/restic/password", password + "\n", mode=0o600, user="user")
    c.write_file(f"{STATE}/agents/main/sessions/a.jsonl", '{"turn": 1}\n', mode=0o600, user="user")

    # Adding the backup section: apply initialises the repository (an explicit step) and
    # installs the units; the timer then runs the first backup by itself, stopping the gateway
    # around the copy.
    install_spec(c, extra=BACKUP_SPEC)
    plan = reconciler(c, "plan", SPEC_PATH, "--no-color")
    assert "backup.repository" in plan.stdout and " init" in plan.stdout, show(plan)
    assert "+OnUnitActiveSec=20s" in plan.stdout, show(plan)
    out = apply(c)  # exit 0: converged, nothing blocked (a backup may stop the gateway now)
    assert password not in out + plan.stdout
    assert c.exists(f"{HOME}/backups/gateway/config")
    deadline = time.monotonic() + 120
    while not [x for x in records(c) if x["kind"] == "backup"] and time.monotonic() < deadline:
        time.sleep(1)
    c.systemctl_user("stop", "reconciler-backup.timer")
    first = [x for x in records(c) if x["kind"] == "backup"]
    assert first and first[0]["ok"], c.journal(args=["--user-unit", "reconciler-backup.service"])
    assert first[0]["downtime_s"] is not None and first[0]["downtime_s"] < 60
    print(f"e2e: first backup downtime {first[0]['downtime_s']:.2f} s")
    answers(c, PORTS["ops"])

    # Change the state: the next backup is incremental.
    c.write_file(f"{STATE}/agents/main/sessions/b.jsonl", '{"turn": 2}\n', mode=0o600, user="user")
    r = reconciler(c, "backup", "run", SPEC_PATH, user="user")
    assert r.returncode == 0, show(r)
    last = records(c)[-1]
    assert last["detail"]["files_new"] == 1, last
    assert last["detail"]["files_unmodified"] >= 1, last

    # Wipe the profile's state; restore in place brings it back byte-identical.
    before = c.sh(TREE).stdout
    assert "./agents/main/sessions/b.jsonl 600 user:user" in before, before
    c.run(["rm", "-rf", STATE])
    r = reconciler(c, "backup", "restore", SPEC_PATH, "ops", "--in-place", user="user")
    assert r.returncode == 0, show(r)
    assert "time travel" in r.stderr
    assert c.sh(TREE).stdout == before
    answers(c, PORTS["ops"])

    r = reconciler(c, "backup", "verify", SPEC_PATH, "--read-data-subset", "100%", user="user")
    assert r.returncode == 0, show(r)
    # Corrupt the biggest pack file: verify fails loudly.
    pack = (
        c.sh(f"find {HOME}/backups/gateway/data -type f -printf '%s %p\\n' | sort -n | tail -1")
        .stdout.split(" ", 1)[1]
        .strip()
    )
    c.run(["chmod", "u+w", pack])
    c.run(
        [f"{VENV}/bin/python", "-c", CORRUPT, pack],
    )
    r = reconciler(c, "backup", "verify", SPEC_PATH, "--read-data-subset", "100%", user="user")
    assert r.returncode == 1, show(r)
    assert "VERIFY FAILED" in r.stderr

    journal = c.journal(lines=2000, args=["--user-unit", "reconciler-backup.service"])
    assert password not in journal
    assert password not in c.sh(f"cat {HOME}/.local/state/reconciler/* 2>/dev/null || true").stdout

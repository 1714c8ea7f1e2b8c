"""The pure part of backups: what each profile's snapshot covers, restic's argv (the password
only by path), retention arguments, secret-file rules, and restic's JSON read back."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from reconciler.core.host import Account, HostContext
from reconciler.gateway.backup import (
    backup_argv,
    backup_summary,
    forget_argv,
    latest_per_profile,
    parse_ls,
    parse_snapshots,
    profile_backups,
    repository,
    repository_state,
    restic_version,
    secret_file_problem,
)
from reconciler.spec.loader import load_spec_text
from reconciler.spec.model import Retention

USER = Account("claw", 1000, 1000, Path("/home/claw"))
HOST = HostContext("vm102", USER, USER, "claw")
SPEC = """\
apiVersion: reconciler/v1
host: {name: vm102, user: claw, data_roots: [/srv/clawd]}
profiles:
  ops: {port: 18789}
  personal: {port: 18809, state_dir: /srv/clawd/personal, workspace: ~/work}
backup:
  repository: ~/backups/gateway
  password_file: ~/.config/restic/password
  environment_file: ~/.config/restic/env
"""


def _spec(extra: str = ""):  # type: ignore[no-untyped-def]
    return load_spec_text(SPEC + extra, "s.yaml")


def test_paths_tags_and_units_per_profile() -> None:
    targets = profile_backups(_spec(), HOST)
    assert [(t.profile, t.paths, t.tags, t.unit) for t in targets] == [
        (
            "ops",
            (Path("/home/claw/.clawdbot-ops"), Path("/home/claw/clawd-ops")),
            ("profile:ops", "host:vm102"),
            "clawdbot-gateway-ops.service",
        ),
        (
            "personal",
            (Path("/srv/clawd/personal"), Path("/home/claw/work")),
            ("profile:personal", "host:vm102"),
            "clawdbot-gateway-personal.service",
        ),
    ]
    assert [t.profile for t in profile_backups(_spec("  profiles: [personal]\n"), HOST)] == [
        "personal"
    ]


def test_repository_resolves_home_and_keeps_backend_urls() -> None:
    spec = _spec()
    assert spec.backup is not None
    repo = repository(spec.backup, HOST)
    assert repo.location == "/home/claw/backups/gateway"
    assert repo.password_file == Path("/home/claw/.config/restic/password")
    assert repo.environment_file == Path("/home/claw/.config/restic/env")
    sftp = _spec().backup
    assert sftp is not None
    from dataclasses import replace

    assert repository(replace(sftp, repository="sftp:nas:/x"), HOST).location == "sftp:nas:/x"


def test_backup_argv_names_the_password_file_never_a_password() -> None:
    spec = _spec()
    assert spec.backup is not None
    repo = repository(spec.backup, HOST)
    ops = profile_backups(spec, HOST)[0]
    argv = backup_argv("/usr/bin/restic", repo, ops, "vm102", spec.backup.exclude, ops.paths[:1])
    assert argv == (
        "/usr/bin/restic",
        "--repo",
        "/home/claw/backups/gateway",
        "--password-file",
        "/home/claw/.config/restic/password",
        "backup",
        "--json",
        "--host",
        "vm102",
        "--tag",
        "profile:ops",
        "--tag",
        "host:vm102",
        *("--exclude", "*.log", "--exclude", "logs", "--exclude", ".cache", "--exclude", "cache"),
        "/home/claw/.clawdbot-ops",
    )


@pytest.mark.parametrize(
    ("retention", "keeps"),
    [
        (Retention(keep_daily=7), ("--keep-daily", "7")),
        (
            Retention(keep_last=3, keep_daily=7, keep_weekly=4, keep_monthly=6),
            (
                *("--keep-last", "3", "--keep-daily", "7"),
                *("--keep-weekly", "4", "--keep-monthly", "6"),
            ),
        ),
        (Retention(keep_monthly=12), ("--keep-monthly", "12")),
    ],
)
def test_retention_arguments(retention: Retention, keeps: tuple[str, ...]) -> None:
    spec = _spec()
    assert spec.backup is not None
    repo = repository(spec.backup, HOST)
    personal = profile_backups(spec, HOST)[1]
    argv = forget_argv("restic", repo, personal, "vm102", retention)
    tail = ("forget", "--prune", "--host", "vm102", "--tag", "profile:personal")
    assert argv[5:] == (*tail, "--group-by", "host,tags", *keeps)


def _stat(mode: int, uid: int = 1000) -> os.stat_result:
    return os.stat_result((mode, 0, 0, 1, uid, 1000, 10, 0, 0, 0))


@pytest.mark.parametrize(
    ("st", "fragment"),
    [
        (None, "does not exist"),
        (_stat(stat.S_IFREG | 0o644), "chmod 600"),
        (_stat(stat.S_IFREG | 0o604), "chmod 600"),
        (_stat(stat.S_IFREG | 0o640), "chmod 600"),
        (_stat(stat.S_IFLNK | 0o777), "not a regular file"),
        (_stat(stat.S_IFREG | 0o600, uid=0), "belongs to uid 0"),
    ],
)
def test_secret_file_rules(st: os.stat_result | None, fragment: str) -> None:
    problem = secret_file_problem("password_file", Path("/p"), st, 1000)
    assert problem is not None and fragment in problem


def test_a_0600_file_of_the_user_is_fine() -> None:
    assert (
        secret_file_problem("password_file", Path("/p"), _stat(stat.S_IFREG | 0o600), 1000) is None
    )
    assert (
        secret_file_problem("password_file", Path("/p"), _stat(stat.S_IFREG | 0o400), 1000) is None
    )


# restic 0.14.0's own output, as printed here.
SNAPSHOTS = json.dumps(
    [
        {"time": "2026-11-29T09:24:23.03Z", "paths": ["/a"], "hostname": "vm102",
         "tags": ["profile:ops", "host:vm102"], "id": "0e8e25c7" + "0" * 56, "short_id": "0e8e25c7"},
        {"time": "2026-11-29T10:00:00.00Z", "paths": ["/a"], "hostname": "vm102",
         "tags": ["profile:ops", "host:vm102"], "id": "1f" + "0" * 62, "short_id": "1f000000"},
        {"time": "2026-11-29T11:00:00.00Z", "paths": ["/a"], "hostname": "other",
         "tags": ["profile:ops"], "id": "2a" + "0" * 62, "short_id": "2a000000"},
        {"time": "2026-11-29T08:00:00.00Z", "paths": ["/b"], "hostname": "vm102",
         "tags": None, "id": "3b" + "0" * 62, "short_id": "3b000000"},
    ]
)  # fmt: skip


def test_snapshots_and_the_latest_per_profile_of_this_host() -> None:
    snaps = parse_snapshots(SNAPSHOTS)
    assert [s.short_id for s in snaps] == ["3b000000", "0e8e25c7", "1f000000", "2a000000"]
    assert snaps[0].profile is None
    latest = latest_per_profile(snaps, "vm102")
    assert {k: v.short_id for k, v in latest.items()} == {"ops": "1f000000"}


def test_ls_lists_regular_files_with_size_and_permission_bits() -> None:
    text = "\n".join(
        [
            '{"time":"t","tree":"x","paths":["/a"],"struct_type":"snapshot"}',
            '{"name":"a","type":"dir","path":"/a","mode":2147484096,"struct_type":"node"}',
            '{"name":"f","type":"file","path":"/a/f","size":3,"mode":384,"struct_type":"node"}',
            '{"name":"l","type":"symlink","path":"/a/l","mode":134218239,"struct_type":"node"}',
        ]
    )
    (only,) = parse_ls(text)
    assert (only.path, only.size, only.mode) == ("/a/f", 3, 0o600)


def test_summary_version_and_repository_state() -> None:
    out = '{"message_type":"status"}\n{"message_type":"summary","files_new":2,"snapshot_id":"0e"}\n'
    assert backup_summary(out)["files_new"] == 2
    assert backup_summary("Fatal: x") == {}
    assert restic_version("restic 0.14.0 compiled with go1.19.8 on linux/amd64") == (0, 14, 0)
    assert restic_version("nonsense") is None
    assert repository_state(0, "") == "ok"
    assert repository_state(1, "Fatal: wrong password or no key found\n") == "wrong-password"
    absent = "Fatal: unable to open config file: stat /r/config: no such file or directory\n"
    assert (
        repository_state(1, absent + "Is there a repository at the following location?\n/r")
        == "absent"
    )
    assert repository_state(1, "Fatal: unable to open repo: connection refused") == "error"


def test_one_freshness_rule_for_status_and_the_plan() -> None:
    """`status`'s STALE and the backup kind's plan warning use the same limit and age."""
    from datetime import datetime

    from reconciler.app.backup import BackupRecord, freshness_of
    from reconciler.facts.backup import BackupHistory, ProfileBackups
    from reconciler.gateway.backup import backup_age_s, stale_after_s
    from reconciler.kinds.backup import freshness_findings

    spec = _spec()
    assert spec.backup is not None
    limit = stale_after_s(spec.backup)
    assert limit == 2 * 24 * 3600  # the default daily schedule, missed twice
    end = "2026-12-07T00:00:00+00:00"
    start = datetime.fromisoformat(end).timestamp()
    assert backup_age_s(end, start + 10) == 10 and backup_age_s(None, start) is None
    for now_s, stale in ((start + limit - 1, False), (start + limit + 1, True)):
        records = [BackupRecord("backup", p, end, end, True) for p in ("ops", "personal")]
        rows = freshness_of(spec, records, now_s)
        assert [r.stale for r in rows] == [stale, stale]
        history = BackupHistory(
            now_s, (ProfileBackups("ops", end), ProfileBackups("personal", end))
        )
        assert bool(freshness_findings(spec, spec.backup, history)) is stale

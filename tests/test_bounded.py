"""Bounded input (issue 11 #9): FIFOs, devices, huge and deeply nested files get a clear error,
never a hang, a MemoryError or a RecursionError; the same reader serves every caller."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from unattended.helpers import SPEC_TEXT

from reconciler.bounded import InputRefused, json_depth, loads_json, read_bounded
from reconciler.kinds.gateway_config import ConfigUnreadable, parse_config

SPEC = SPEC_TEXT


def reconciler(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    # A subprocess with a deadline: a regression must fail the test, not hang the suite.
    return subprocess.run(
        [sys.executable, "-m", "reconciler", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        stdin=subprocess.DEVNULL,
    )


def test_read_bounded_refuses_what_is_not_a_regular_file(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for path, what in ((fifo, "a FIFO (named pipe)"), ("/dev/zero", "a character device")):
        with pytest.raises(InputRefused) as refused:
            read_bounded(path, 1024)
        assert str(refused.value) == f"{path}: is {what}, not a regular file"
    with pytest.raises(InputRefused, match="is a directory"):
        read_bounded(tmp_path, 1024)


def test_read_bounded_reads_at_most_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x" * 100)
    assert read_bounded(path, 100) == b"x" * 100
    with pytest.raises(InputRefused) as refused:
        read_bounded(path, 99)
    assert refused.value.size == 100 and "too large (100 bytes; at most 99" in str(refused.value)
    link = tmp_path / "link"
    link.symlink_to(path)
    with pytest.raises(OSError):
        read_bounded(link, 100, follow=False)


def test_deep_json_is_refused_before_parsing() -> None:
    deep = "[" * 100_000 + "]" * 100_000
    assert json_depth(deep) == 100_000
    assert json_depth('{"a": "[[[[", "b": [1, {"c": "\\"]]"}]}') == 3  # strings do not count
    with pytest.raises(InputRefused, match="JSON nested 100000 levels deep"):
        loads_json(deep, source="plan.json")


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_apply_and_validate_with_a_fifo_or_device_say_so(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "spec.yaml"
    if kind == "fifo":
        os.mkfifo(path)
    else:
        path = Path("/dev/zero")
    what = "a FIFO (named pipe)" if kind == "fifo" else "a character device"
    for args in (["validate", str(path)], ["apply", "--yes", str(path)]):
        done = reconciler(*args)
        assert done.returncode == 1, done
        assert f"cannot read the spec: it is {what}, not a regular file" in done.stderr
        assert "Traceback" not in done.stderr and "MemoryError" not in done.stderr


def test_a_deeply_nested_saved_plan_is_a_clear_error(tmp_path: Path) -> None:
    plan = tmp_path / "plan.json"
    inner = "[" * 50_000 + "]" * 50_000
    plan.write_text('{"format_version": "1", "freshness": {}, "x": ' + inner + "}")
    from reconciler.review.saved_plan import SavedPlanInvalid, is_saved_plan, load_saved_plan

    assert not is_saved_plan(plan)
    with pytest.raises(SavedPlanInvalid, match="JSON nested 50001 levels deep"):
        load_saved_plan(plan)


def test_a_fifo_snapshot_is_a_clear_error(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    snapshot = tmp_path / "snap.json"
    os.mkfifo(snapshot)
    done = reconciler("plan", str(spec), "--against", str(snapshot))
    assert done.returncode == 1, done
    assert "is a FIFO (named pipe), not a regular file" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_fifo_runs_jsonl_neither_hangs_status_nor_apply(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    state = tmp_path / "xdg" / "reconciler"
    state.mkdir(parents=True, mode=0o700)
    os.mkfifo(state / "runs.jsonl")
    env = dict(os.environ, XDG_STATE_HOME=str(tmp_path / "xdg"))
    done = reconciler("status", str(spec), env=env)
    assert done.returncode == 1, done
    assert "runs.jsonl: is a FIFO (named pipe), not a regular file" in done.stderr
    assert "Traceback" not in done.stderr
    from reconciler.unattended.runs import RunRecord, append_record

    record = RunRecord(
        start="2026-01-01T00:00:00+00:00", end="2026-01-01T00:00:01+00:00", result="failed"
    )
    with pytest.raises(InputRefused, match="is a FIFO"):
        append_record(state, record)  # at once: opening a FIFO for writing does not wait


def test_gateway_configs_nested_too_deeply_are_unreadable_not_a_crash() -> None:
    for text in ("[" * 100_000 + "]" * 100_000, "{a: " * 5000 + "1" + "}" * 5000):
        with pytest.raises(ConfigUnreadable, match="nested too deeply"):
            parse_config(text, "clawdbot.json")


def test_gateway_config_json_and_json5_parse_alike() -> None:
    doc = {"gateway": {"port": 18789, "auth": {"mode": "token"}}, "agents": [1, 2.5, "x"]}
    five = (
        "// hand-edited\n{gateway: {port: 18789, auth: {mode: 'token',},}, agents: [1, 2.5, 'x',],}"
    )
    assert parse_config(json.dumps(doc), "c") == parse_config(five, "c") == doc

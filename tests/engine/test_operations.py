"""One operation dispatch: every operation type describes, fingerprints and serialises itself.

The JSON plan entry and the saved-plan intent are generated from one field walk
(`Operation.fields`); these tests pin both against golden data recorded before that walk
existed, so the refactor changed neither the plan format nor any fingerprint.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import get_args

import pytest
from plan_scenarios import SCENARIOS

from reconciler.core.action import (
    OPERATION_TYPES,
    BackupProfile,
    EnsureDirectory,
    EnsureSecretEnv,
    ForgetBadVersion,
    ForgetFailedInstall,
    GatedSwitch,
    InstallVersion,
    MarkBadVersion,
    MoveAside,
    Operation,
    RemoveFile,
    RemoveTree,
    RestoreInPlace,
    RestoreSnapshot,
    RunCommand,
    VerifySnapshot,
    WaitForPort,
    WarmUp,
    WriteFile,
    WriteTextfile,
)
from reconciler.core.command import Command
from reconciler.render.json_plan import operation_entry
from reconciler.review.saved_plan import action_digests, operation_intent, plan_fingerprint
from reconciler.shell.runner import HostRunner

GOLDEN = json.loads((Path(__file__).parent.parent / "data" / "operations.json").read_text())

# One of every operation type, with every field away from its default where it has one.
EVERY_OPERATION: list[Operation] = [
    RunCommand(
        Command(("a", "b c"), scope="user", needs_root=True, mutating=True, timeout_s=5, stdin="in")
    ),
    WriteFile(Path("/f"), "text", 0o640, "u", False, False, True),
    WriteFile(Path("/s"), "secret", 0o600, sensitive=True),
    EnsureDirectory(Path("/d"), 0o700, "u", True),
    RemoveFile(Path("/r"), False),
    MoveAside(Path("/h/.clawdbot-ops"), ".before-restore-20261207T100000Z", "u"),
    WaitForPort(80, 2.5),
    EnsureSecretEnv(Path("/e"), "K", 0o600, "u"),
    GatedSwitch(
        "ops",
        "g.service",
        Path("/u/g.service"),
        "[Service]\n",
        Path("/s/c.json"),
        Command(("/v2/gw", "gateway", "health"), scope="user"),
        Command(("/v1/gw", "gateway", "health"), scope="user"),
        "1",
        "2",
        30.0,
        5.0,
        Path("/m"),
        "u",
    ),
    InstallVersion(
        Path("/p"),
        "1.2.3",
        "{}\n",
        "node_modules/x/e.js",
        "/n/npm",
        "/n/node",
        "system",
        60,
        memory=Path("/m"),
    ),
    RemoveTree(Path("/p"), "1.2.2", "system"),
    BackupProfile(
        "ops",
        (Path("/h/.clawdbot-ops"), Path("/h/clawd-ops")),
        Command(("restic", "backup", "--json"), scope="user", mutating=True, timeout_s=60),
        Command(("restic", "forget", "--prune"), scope="user", mutating=True),
        "g.service",
    ),
    RestoreSnapshot(
        Path("/h/restores/ops"),
        Command(("restic", "restore", "abc", "--target", "/h/restores/ops"), scope="user"),
        "u",
    ),
    RestoreInPlace(
        "ops",
        "g.service",
        (Path("/h/.clawdbot-ops"),),
        ".before-restore-20261207T100000Z",
        Path("/h/.clawdbot-ops"),
        Command(("restic", "restore", "abc", "--target", "/"), scope="user", mutating=True),
        18789,
        30.0,
        "u",
    ),
    MarkBadVersion(Path("/m"), "ops", "2", "2026-12-07T10:00:00+00:00", "rolled back by hand"),
    ForgetBadVersion(Path("/m"), "ops"),
    ForgetFailedInstall(Path("/m"), "2"),
    VerifySnapshot(
        "ops",
        "abcdef0123456789",
        "abcdef01",
        Command(("restic", "restore", "abcdef0123456789", "--verify"), scope="user"),
        Command(("restic", "ls", "--json", "abcdef0123456789"), scope="user"),
    ),
    WriteTextfile(Path("/var/lib/node_exporter"), "reconciler-backup.prom", "# HELP x\n"),
]


def _wrap(command: Command) -> tuple[str, ...]:
    return ("sudo", "-n", *command.argv)


# Recorded with the code before the field walk (main at 6df8b46): unchanged plans keep them.
# fresh-host's plan changed since on purpose: its served profile's new config lists 127.0.0.1
# in gateway.trustedProxies (kinds/gateway_config.py).
FINGERPRINTS = {
    "fresh-host": "16e572e7f12dd5f58775ad55f0a8709750aeafd00827d625adec2413b5a4d35f",
    "in-sync": "4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945",
    "public-exposure": "fb60baa3c647016776e81773398453ba512d4577e422b48af4de3a49e0144f99",
}


@pytest.mark.parametrize("name", sorted(FINGERPRINTS))
def test_fingerprints_of_unchanged_plans_do_not_change(name: str) -> None:
    plan = SCENARIOS[name].probed().plan
    assert plan_fingerprint(action_digests(plan)) == FINGERPRINTS[name]


# Shapes of a type with optional fields the one above does not show.
OTHER_SHAPES: list[Operation] = [
    dataclasses.replace(
        next(op for op in EVERY_OPERATION if isinstance(op, GatedSwitch)),
        warm_up=WarmUp(
            "reconciler-warm-up-ops.service",
            ("/n/node", "/v2/entry.js"),
            "/n:/usr/bin",
            "CLAWDBOT_",
            "clawdbot.json",
            Path("/h/.cache/reconciler/warm-up/ops"),
            120.0,
        ),
    )
]


def test_a_warm_up_shows_in_the_plan_and_the_fingerprint() -> None:
    """What a reviewer approves includes the warm-up: its unit, program, directory, deadline;
    a switch without one keeps the fingerprint it had before warm-ups existed (golden)."""
    (warm,) = OTHER_SHAPES
    plain = next(op for op in EVERY_OPERATION if isinstance(op, GatedSwitch))
    entry = operation_entry(warm, _wrap, lambda c: "no")
    assert entry["warm_up_unit"] == "reconciler-warm-up-ops.service"
    assert entry["warm_up_program"] == ["/n/node", "/v2/entry.js"]
    assert entry["description"].startswith("warm the new version up first")
    assert operation_intent(warm) != operation_intent(plain)
    assert operation_intent(warm)["warm_up_timeout_s"] == 120.0


def test_every_operation_type_is_in_the_golden_data() -> None:
    assert {type(op) for op in EVERY_OPERATION} == set(OPERATION_TYPES)


def test_plan_entries_and_intents_are_the_golden_ones() -> None:
    assert [operation_intent(op) for op in EVERY_OPERATION] == GOLDEN["intents"]
    assert [operation_entry(op, _wrap, lambda c: "no") for op in EVERY_OPERATION] == GOLDEN[
        "entries"
    ]
    assert [operation_entry(op, _wrap) for op in EVERY_OPERATION] == GOLDEN["entries-norefusal"]
    # Key order is part of the JSON plan text (golden plans are compared as text).
    for op, golden in zip(EVERY_OPERATION, GOLDEN["entries"], strict=True):
        assert list(operation_entry(op, _wrap, lambda c: "no")) == list(golden)


def test_every_operation_type_is_registered_everywhere() -> None:
    """A new operation type cannot be missed: the union, the table, the runner and the walk."""
    assert set(get_args(Operation)) == set(OPERATION_TYPES)
    assert set(HostRunner._handlers) == set(OPERATION_TYPES)
    names = [cls.type_name for cls in OPERATION_TYPES]
    assert len(set(names)) == len(names)


def test_secrets_never_reach_the_fingerprint_or_the_plan() -> None:
    sensitive = WriteFile(Path("/s"), "hunter2-secret", 0o600, sensitive=True)
    assert "hunter2" not in json.dumps(operation_intent(sensitive))
    assert "hunter2" not in json.dumps(operation_entry(sensitive, _wrap))
    # A non-sensitive file's content is hashed, so editing it changes the fingerprint.
    one = WriteFile(Path("/f"), "a", 0o644)
    assert operation_intent(one) != operation_intent(WriteFile(Path("/f"), "b", 0o644))


def test_plan_schema_describes_exactly_the_operation_types_and_their_fields() -> None:
    """schemas/plan.schema.json has one variant per operation type, with the fields its plan
    entry carries: the schema cannot keep a type or a field the code dropped, nor miss one."""
    schema = json.loads(
        (Path(__file__).parent.parent.parent / "schemas" / "plan.schema.json").read_text()
    )
    common = set(schema["$defs"]["operationCommon"]["properties"]) | {"type"}
    variants = {
        v["properties"]["type"]["const"]: set(v["properties"]) | common
        for v in schema["$defs"]["operation"]["oneOf"]
    }
    assert set(variants) == {cls.type_name for cls in OPERATION_TYPES}
    # Fields shown only in some shapes of a type (a switch's warm-up) count once any shape
    # carries them: every key an entry has is in the schema, every key of the schema in one.
    shown: dict[str, set[str]] = {}
    for op in (*EVERY_OPERATION, *OTHER_SHAPES):
        entry = operation_entry(op, _wrap, lambda c: "no")
        assert set(entry) <= variants[op.type_name], op.type_name
        shown.setdefault(op.type_name, set()).update(entry)
    assert shown == variants

"""Snapshots: recorded on the host without secrets, planned against anywhere with the same result."""

from __future__ import annotations

import ast
import dataclasses
import importlib
import json
import os
import pkgutil
import shutil
import stat
import typing
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import engine_on_fakehost as drive
import json5
import pytest
from fakehost import FakeHost
from plan_scenarios import HOME, SCENARIOS, USER, host_of
from review_cli import SPEC, with_work_profile

import reconciler.review.snapshot
from reconciler.app.plan_pass import plan_from_facts, probe_and_plan
from reconciler.app.review import record_host
from reconciler.core.host import HostContext
from reconciler.core.probe import Probe, ProbeFailed
from reconciler.facts.codec import (
    CodecError,
    Redaction,
    Registry,
    decode,
    encode,
    recorded,
    redact_value,
    value_type,
)
from reconciler.facts.files import DirectoryProbe, PathProbe, PathState, RealPathProbe
from reconciler.facts.listeners import Listener
from reconciler.facts.systemd import UnitStatusProbe
from reconciler.kinds import all_kinds
from reconciler.kinds.gateway_config import (
    UNREADABLE_CONFIG,
    compare,
    owned_config_text,
    parse_config,
)
from reconciler.render.redaction import redact_plan, redact_text
from reconciler.review.saved_plan import action_digests, describe_differences, plan_fingerprint
from reconciler.review.snapshot import (
    CONTENT_DROPPED,
    Snapshot,
    SnapshotFacts,
    SnapshotInvalid,
    file_text_keeper,
    load_snapshot,
    parse_snapshot,
    record_snapshot,
    registry,
    snapshot_document,
    snapshot_text,
)
from reconciler.shell.runner import ReadOnlyRunner
from reconciler.spec import load_spec
from reconciler.spec.model import Profile

SECRET = "tok-4e1f0c9b-SNAPSHOT-SECRET"


# --- the codec -----------------------------------------------------------------------------------


def test_every_fact_of_every_scenario_survives_a_round_trip() -> None:
    for case in SCENARIOS.values():
        text = snapshot_text(case.snapshot)
        back = parse_snapshot(json.loads(text), "x")
        assert back.facts == case.snapshot.facts
        assert back.host == case.snapshot.host
        assert back.directories == case.snapshot.directories
        assert back.listeners == case.snapshot.listeners
        assert snapshot_text(back) == text  # stable: re-recording an unchanged host changes nothing


def test_defaults_are_left_out_and_paths_are_strings() -> None:
    encoded = encode(PathState(Path("/x"), "missing"), registry())
    assert encoded == {"@": "PathState", "path": "/x", "kind": "missing"}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"@": "Nope"}, "unknown type 'Nope'"),
        (
            {"@": "PathState", "path": "/x", "kind": "missing", "color": 1},
            "unknown field(s) of PathState: color",
        ),
        ({"@": "PathState", "path": "/x", "kind": "elsewhere"}, "'elsewhere' is not one of"),
        (
            {"@": "PathState", "path": "/x", "kind": "file", "mode": "0644"},
            "expected int, found str",
        ),
        ({"@": "PathState", "kind": "file"}, "missing 1 required positional argument: 'path'"),
        ({"path": "/x"}, "expected an object with '@' naming its type"),
    ],
)
def test_bad_data_is_refused_with_its_place(data: dict[str, Any], message: str) -> None:
    with pytest.raises(CodecError) as caught:
        decode(data, PathState, registry(), "facts[3].value")
    assert message in str(caught.value) and "facts[3].value" in str(caught.value)


def test_only_registered_classes_are_encoded() -> None:
    with pytest.raises(TypeError, match="not registered"):
        encode(PathState(Path("/x"), "missing"), Registry([]))


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ([], 'not a snapshot (no "kind": "reconciler-snapshot")'),
        (
            {"kind": "reconciler-snapshot", "format_version": "9"},
            "format_version '9' is not supported",
        ),
        (
            {"kind": "reconciler-snapshot", "format_version": "1", "host": {}},
            "host: expected an object",
        ),
    ],
)
def test_snapshot_files_are_checked(doc: Any, message: str) -> None:
    with pytest.raises(SnapshotInvalid) as caught:
        parse_snapshot(doc, "snap.json")
    assert message in str(caught.value)


def test_a_file_that_is_not_json_is_not_a_snapshot(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_text("apiVersion: reconciler/v1\n")
    with pytest.raises(SnapshotInvalid, match="not a snapshot"):
        load_snapshot(path)


# --- what a snapshot keeps of file contents ------------------------------------------------------

CONFIGS = [
    '{gateway: {mode: "local", port: 18789, auth: {token: "%s"}}, channels: {x: {botToken: "%s"}}}',
    '// comment\n{gateway: {port: "18789", bind: "lan", tailscale: {mode: "serve", resetOnExit: true}, token: "%s"}, other: "%s"}',
    '{gateway: "%s-not-an-object", keep: "%s"}',
    '{gateway: {port: {nested: "%s"}, tailscale: "%s"}}',
    '{gateway: {mode: "local", port: 18809, bind: "loopback", tailscale: {mode: "off"}}, secret: "%s%s"}',
    "{}%s%s",
]


@pytest.mark.parametrize("template", CONFIGS)
def test_a_config_keeps_only_the_owned_keys_and_plans_the_same(template: str) -> None:
    text = template % (SECRET, SECRET)
    kept, error = owned_config_text(text)
    if template.startswith("{}"):
        assert kept is None and error == UNREADABLE_CONFIG
        return
    assert error is None and kept is not None and SECRET not in kept
    profile = Profile("ops", 18809)
    try:
        original = compare(parse_config(text, "c"), profile, "c")
    except Exception as exc:  # the same error (a non-object parent) from both
        with pytest.raises(type(exc), match=str(exc).split(":")[-1].strip()[:20]):
            compare(parse_config(kept, "c"), profile, "c")
        return
    reduced = compare(parse_config(kept, "c"), profile, "c")
    assert (reduced.desired, reduced.actual, reduced.in_sync) == (
        original.desired,
        original.actual,
        original.in_sync,
    )
    assert set(json5.loads(kept)) <= {"gateway"}


def test_unit_files_are_redacted_and_other_files_dropped() -> None:
    case = SCENARIOS["in-sync"]
    recorded_text = file_text_keeper(case.spec, case.snapshot.host_context())
    unit = f"[Service]\nEnvironment=CLAWDBOT_GATEWAY_TOKEN={SECRET}\nExecStart=/x --port 1\n"
    text, error = recorded_text(Path("/u/clawdbot-gateway.service"), unit)
    assert error is None and text is not None
    assert SECRET not in text and "CLAWDBOT_GATEWAY_TOKEN=(sensitive)" in text
    assert "--port 1" in text
    assert recorded_text(Path("/x/notes.txt"), SECRET) == (None, CONTENT_DROPPED)


# --- answering probes -----------------------------------------------------------------------------


def test_what_the_snapshot_cannot_know_is_a_probe_failure_not_a_guess() -> None:
    facts = SnapshotFacts(SCENARIOS["fresh-host"].snapshot, source="snap.json")
    unknown = facts.answer(RealPathProbe(Path("/opt/other")))
    assert isinstance(unknown, ProbeFailed)
    assert "is not in snap.json" in str(unknown) and "reconciler probe SPEC --out FILE" in str(
        unknown
    )
    # under a listed directory, a name it lacks is missing
    assert facts.answer(PathProbe(HOME / ".clawdbot-new")).kind == "missing"
    assert facts.answer(PathProbe(HOME / ".clawdbot-new/credentials")).kind == "missing"
    # a name the listing did not look for stays unknown
    assert isinstance(facts.answer(PathProbe(HOME / "projects")), ProbeFailed)
    # the user's manager was down: so it is for every unit
    assert not facts.answer(UnitStatusProbe("clawdbot-gateway-new.service")).reachable
    listing = facts.answer(DirectoryProbe(HOME / ".config/systemd/user", ("x",), ".service"))
    assert listing.exists is False


def test_planning_against_a_snapshot_reads_nothing_of_this_machine(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    case = SCENARIOS["public-exposure"]
    loaded = parse_snapshot(json.loads(snapshot_text(case.snapshot)), "snap.json")

    def forbidden(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"host access while planning against a snapshot: {args}")

    for module, name in ((os, "lstat"), (os, "listdir"), (os, "stat"), (shutil, "which")):
        monkeypatch.setattr(module, name, forbidden)
    monkeypatch.setattr(ReadOnlyRunner, "_execute", forbidden)
    monkeypatch.setattr(Path, "exists", forbidden)
    monkeypatch.setattr(Path, "resolve", forbidden)
    facts = SnapshotFacts(loaded)
    probed = plan_from_facts(case.spec, facts.host, all_kinds(), facts.collect, loaded.recorded_at)
    assert not probed.plan.errors
    assert plan_fingerprint(action_digests(probed.plan)) == plan_fingerprint(
        action_digests(case.probed().plan)
    )


# --- fidelity: a plan against the snapshot is the plan on the host ---------------------------------


def record(fake: FakeHost, host: HostContext, spec_path: Path) -> Snapshot:
    spec = load_spec(spec_path)
    snapshot, _ = record_host(spec, host, drive.read_only_runner(fake, host), all_kinds())
    return parse_snapshot(json.loads(snapshot_text(snapshot)), "snap.json")


def assert_same_plan(
    fake: FakeHost, host: HostContext, snapshot: Snapshot, spec_path: Path
) -> None:
    spec = load_spec(spec_path)
    live = probe_and_plan(spec, host, drive.read_only_runner(fake, host), all_kinds()).plan
    facts = SnapshotFacts(snapshot)
    offline = plan_from_facts(spec, facts.host, all_kinds(), facts.collect, "t").plan
    # Errors may quote the host (a process's command line): compared as every output shows them.
    assert redact_plan(offline).errors == redact_plan(live).errors
    live_digests, offline_digests = action_digests(live), action_digests(offline)
    assert offline_digests == live_digests, describe_differences(live_digests, offline_digests)


def _seed(fake: FakeHost) -> None:
    """The host these tests record: node 22, a gateway release, the `ops` unit with a token."""
    fake.set_node("v22.12.0")
    fake.set_gateway("2026.1.20")
    fake.install_gateway_unit("ops", port=18809, token=SECRET)


@pytest.mark.parametrize("invoker", ["user", "root"])
def test_offline_plans_equal_live_plans_also_for_a_new_profile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, invoker: str
) -> None:
    monkeypatch.chdir(tmp_path)
    with FakeHost(tmp_path / "host") as fake:
        _seed(fake)
        fake.install_gateway_unit(port=18789)  # a legacy unit on personal's port
        fake.add_stray_listener(18829, ["python3", "-m", "http.server", f"--token={SECRET}"])
        host = drive.host_context(fake, invoker)
        spec = Path("vm102.yaml")
        spec.write_text(SPEC)
        snapshot = record(fake, host, spec)
        assert SECRET not in snapshot_text(snapshot)
        assert_same_plan(fake, host, snapshot, spec)
        bigger = Path("bigger.yaml")
        bigger.write_text(with_work_profile(SPEC))
        assert_same_plan(fake, host, snapshot, bigger)


def test_offline_plans_equal_live_plans_on_a_converged_host(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with FakeHost(tmp_path / "host") as fake:
        fake.set_node("v22.12.0")
        fake.set_gateway("2026.1.24-3")
        host = drive.host_context(fake, "root")
        spec = Path("vm102.yaml")
        spec.write_text(SPEC)
        outcome = drive.apply(fake, load_spec(spec), host)
        assert outcome.ok
        snapshot = record(fake, host, spec)
        assert_same_plan(fake, host, snapshot, spec)
        assert_same_plan(fake, host, snapshot, spec)
        bigger = Path("bigger.yaml")
        bigger.write_text(with_work_profile(SPEC).replace("port: 18809", "port: 18849"))
        assert_same_plan(fake, host, snapshot, bigger)


def test_a_spec_for_another_user_is_refused(tmp_path: Path) -> None:
    from reconciler.app.review import ReviewError, plan_against

    case = SCENARIOS["in-sync"]
    path = tmp_path / "snap.json"
    path.write_text(snapshot_text(case.snapshot))
    other = replace(case.spec, host=replace(case.spec.host, user="bob"))
    with pytest.raises(ReviewError, match="recorded for user 'user', the spec is for 'bob'"):
        plan_against(other, path, all_kinds(), host_check=True)
    renamed = replace(case.spec, host=replace(case.spec.host, name="vm103"))
    with pytest.raises(ReviewError, match=r"the snapshot .* is of vm102"):
        plan_against(renamed, path, all_kinds(), host_check=True)
    _, _, probed, source = plan_against(renamed, path, all_kinds(), host_check=False)
    assert source.path == str(path) and len(source.sha256) == 64
    assert probed.probed_at == case.snapshot.recorded_at


def test_the_snapshot_document_lists_facts_in_a_stable_order() -> None:
    doc = snapshot_document(SCENARIOS["public-exposure"].snapshot)
    keys = [json.dumps(f["probe"], sort_keys=True) for f in doc["facts"]]
    assert keys == sorted(keys)
    assert doc["host"]["@"] == "HostContext" and doc["host"]["privileged"] is True
    assert host_of(USER).user == USER


# --- facts describe themselves --------------------------------------------------------------------

SNAPSHOTS = Path(__file__).parent / "data" / "snapshots"


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_snapshot_files_of_the_previous_layout_still_load_and_plan_the_same(name: str) -> None:
    """Files written before each fact carried its own codec (main at 6df8b46) load unchanged."""
    case = SCENARIOS[name]
    loaded = load_snapshot(SNAPSHOTS / f"{name}.json").snapshot
    assert loaded.facts == case.snapshot.facts and loaded.host == case.snapshot.host
    assert snapshot_text(loaded) == (SNAPSHOTS / f"{name}.json").read_text()
    facts = SnapshotFacts(loaded)
    offline = plan_from_facts(case.spec, facts.host, all_kinds(), facts.collect, "t").plan
    assert action_digests(offline) == action_digests(case.probed().plan)


def _probe_classes() -> set[type]:
    """Every probe class of the package (every module imported, so the set is always whole)."""
    for module in pkgutil.walk_packages(reconciler.__path__, "reconciler."):
        if module.name != "reconciler.__main__":
            importlib.import_module(module.name)
    found: set[type] = set()
    todo = list(Probe.__subclasses__())
    while todo:
        cls = todo.pop()
        todo += cls.__subclasses__()
        if cls.__module__.startswith("reconciler.") and dataclasses.is_dataclass(cls):
            found.add(cls)
    return found


def test_every_probe_of_the_package_is_registered_with_the_codec() -> None:
    probes = _probe_classes()
    registered = registry()
    assert len(probes) >= 15
    assert sorted(c.__name__ for c in probes if c not in registered) == []
    for cls in probes:
        fact_type = value_type(cls)
        for part in (*typing.get_args(fact_type), fact_type):
            if dataclasses.is_dataclass(part):
                assert part in registered, f"{cls.__name__}'s fact {part.__name__}"


def test_an_unknown_probe_is_an_error_not_silently_dropped() -> None:
    @dataclasses.dataclass(frozen=True)
    class StrayProbe(Probe[bool]):
        name: str

    case = SCENARIOS["in-sync"]
    facts = {**case.snapshot.facts, StrayProbe("x"): True}
    with pytest.raises(TypeError, match=r"StrayProbe not registered.*@recorded"):
        record_snapshot(
            case.spec, case.snapshot.host_context(), facts, recorded_at="t", listeners=None
        )
    doc = json.loads(snapshot_text(case.snapshot))
    doc["facts"].append({"probe": {"@": "StrayProbe", "name": "x"}, "value": True})
    with pytest.raises(SnapshotInvalid, match=r"facts\[\d+\]\.probe: unknown type 'StrayProbe'"):
        parse_snapshot(doc, "snap.json")


def test_a_second_class_under_a_recorded_name_is_refused() -> None:
    @dataclasses.dataclass(frozen=True)
    class PathState:  # the name of facts.files.PathState
        path: str

    with pytest.raises(TypeError, match=r"name is taken by reconciler\.facts\.files"):
        recorded(PathState)


def test_the_snapshot_codec_knows_no_kind() -> None:
    """review/snapshot.py imports no kind module and names no probe class of a kind."""
    source = (Path(reconciler.review.snapshot.__file__)).read_text()
    tree = ast.parse(source)
    imported = [
        node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
    ]
    assert not [m for m in imported if m.startswith("reconciler.kinds")]
    kind_classes = {
        c.__name__ for c in _probe_classes() if c.__module__.startswith("reconciler.kinds")
    }
    assert kind_classes and not [name for name in kind_classes if name in source]


def test_facts_redact_themselves() -> None:
    listener = Listener("127.0.0.1", 1, 1000, 7, 42, f"srv --password={SECRET}")
    redaction = Redaction(text=redact_text, file_text=lambda p, t: (None, "dropped"))
    shown = redact_value((listener, ProbeFailed(f"x API_TOKEN={SECRET}")), redaction)
    assert SECRET not in repr(shown) and SECRET not in str(shown[1])
    state = PathState(Path("/x"), "file", text=SECRET)
    assert redact_value(state, redaction) == replace(state, text=None, error="dropped")


# --- the file on disk: private, and the same file for the same state -------------------------------


def test_probe_writes_a_private_file_that_re_recording_leaves_unchanged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from review_cli import FakeHostCli

    monkeypatch.chdir(tmp_path)
    with FakeHost(tmp_path / "host") as fake:
        _seed(fake)
        cli = FakeHostCli(fake)
        Path("vm102.yaml").write_text(SPEC)
        out = tmp_path / "snap.json"
        out.write_text("old content\n")
        out.chmod(0o644)
        assert cli("probe", "vm102.yaml", "--out", out).exit_code == 0
        assert stat.S_IMODE(out.stat().st_mode) == 0o600
        first = out.read_text()
        assert SECRET not in first
        monkeypatch.setattr(
            "reconciler.app.review.datetime",
            type("Later", (), {"now": staticmethod(lambda tz: _LATER)}),
        )
        assert cli("probe", "vm102.yaml", "--out", out).exit_code == 0
        assert out.read_text() == first  # same state: the same bytes, recorded_at kept
        fake.set_linger("user", True)  # the host changes
        assert cli("probe", "vm102.yaml", "--out", out).exit_code == 0
        changed = load_snapshot(out).snapshot
        assert changed.recorded_at == _LATER.isoformat(timespec="seconds")
        assert stat.S_IMODE(out.stat().st_mode) == 0o600


def test_probe_asks_each_question_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The snapshot's extra facts include the plan's own: those are not probed a second time
    (a remote plan is one `probe` there: every repeated command was on its critical path)."""
    from review_cli import FakeHostCli

    monkeypatch.chdir(tmp_path)
    with FakeHost(tmp_path / "host") as fake:
        _seed(fake)
        cli = FakeHostCli(fake)
        Path("vm102.yaml").write_text(SPEC)
        fake.clear_calls()
        assert cli("probe", "vm102.yaml", "--out", tmp_path / "snap.json").exit_code == 0
        # a wrapper (sudo, runuser) logs its own line after the command's: count the commands
        ran = [tuple(c["argv"]) for c in fake.calls() if c["tool"] not in ("sudo", "runuser")]
        assert ran and len(ran) == len(set(ran)), sorted(ran)


_LATER = datetime(2031, 1, 2, 3, 4, 5, tzinfo=UTC)


VERSIONED = SPEC.replace(
    '    version: "2026.1.24-3"\n',
    '    version: "2026.1.24-3"\n    install: versioned\n    extra: {strip-ansi: "^7.1.0"}\n',
)


def test_offline_plans_equal_live_plans_with_versioned_installs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The prefix listing (versions, markers, leftovers) round-trips through a snapshot: a plan
    against it equals the live plan, also for a spec that moves a profile to another version."""
    monkeypatch.chdir(tmp_path)
    with FakeHost(tmp_path / "host") as fake:
        fake.set_node("v22.12.0")
        fake.set_npm_registry(
            {"clawdbot": {"2026.1.24-3": "ok", "2026.1.23": "ok"}, "strip-ansi": {"7.1.2": "ok"}}
        )
        host = drive.host_context(fake, "user")
        spec = Path("vm102.yaml")
        spec.write_text(VERSIONED.replace('"2026.1.24-3"', '"2026.1.23"'))
        assert drive.apply(fake, load_spec(spec), host).ok
        (fake.home / ".local/lib/clawdbot/.install-2026.1.24-3-00ff00ff").mkdir()
        spec.write_text(VERSIONED)
        snapshot = record(fake, host, spec)
        assert_same_plan(fake, host, snapshot, spec)
        canary = Path("canary.yaml")
        canary.write_text(
            VERSIONED.replace(
                "    auth: token\n", '    auth: token\n    gateway_version: "2026.1.23"\n'
            )
        )
        assert_same_plan(fake, host, snapshot, canary)

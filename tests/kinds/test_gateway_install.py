"""Versioned gateway installs on the fake host: install, canary, retention, failures, kills.

The fake npm installs from its registry into `--prefix` (the real clawdbot releases: 2026.1.24-3
needs strip-ansi beside it, 2026.1.24 cannot print --version), the fake node runs the entry it
wrote; everything else is the real engine (probes, planner, runner, files).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import pytest

from reconciler.core.action import Action, InstallVersion, RemoveTree
from reconciler.core.plan import Plan
from reconciler.facts.gateway_versions import versions_probe
from reconciler.gateway.versions import MARKER, entry_point, prefix_path
from reconciler.kinds.gateway_install import running_versions
from reconciler.spec.model import GatewayRuntime, Node, Profile, Runtime, Spec

from .gateway_host import GatewayHost, addresses, gateway_spec

GOOD = "2026.1.24-3"
BROKEN = "2026.1.24"  # the real broken release: installs, cannot print --version
REGISTRY = {
    "clawdbot": {GOOD: "needs:strip-ansi", BROKEN: "broken", "2026.1.23": "ok", "2026.1.22": "ok"},
    "strip-ansi": {"7.1.2": "ok"},
    "libsignal": {"6.0.0": "ok"},
}


def versioned_spec(
    version: str = GOOD, *profiles: Profile, keep: int = 1, extra: bool = True
) -> Spec:
    gateway = GatewayRuntime(
        "clawdbot",
        version=version,
        install="versioned",
        start_timeout_s=2,
        keep=keep,
        extra=(("strip-ansi", "^7.1.0"),) if extra else (),
        overrides=(("libsignal", "npm:libsignal@6.0.0"),),
    )
    return replace(
        gateway_spec(*profiles), runtime=Runtime(node=Node(range=">=22.12"), gateway=gateway)
    )


def action_at(plan: Plan, address: str) -> Action | None:
    return next((a for a in plan.actions if a.address == address), None)


def host(tmp_path: Path) -> GatewayHost:
    g = GatewayHost(tmp_path)
    g.fake.set_node("v22.12.0")
    g.fake.set_gateway(None)  # nothing global: the versioned install is the only gateway
    g.fake.set_npm_registry(REGISTRY)
    return g


def prefix(g: GatewayHost, spec: Spec) -> Path:
    return prefix_path(spec, g.home)


def exec_start(g: GatewayHost, unit: str) -> str:
    text = (g.home / ".config/systemd/user" / unit).read_text()
    return next(line for line in text.splitlines() if line.startswith("ExecStart="))


def test_plan_names_every_path_before_install_and_apply_converges(tmp_path: Path) -> None:
    g = host(tmp_path)
    spec = versioned_spec()
    plan = g.plan(spec)
    install = action_at(plan, f"gateway.version[{GOOD}]")
    assert install is not None and install.blocked is None
    (op,) = install.operations
    assert isinstance(op, InstallVersion) and op.scope == "user" and not op.needs_root
    assert json.loads(op.package_json)["dependencies"] == {"clawdbot": GOOD, "strip-ansi": "^7.1.0"}
    unit = action_at(plan, "profile[ops].unit")
    assert unit is not None and f"gateway.version[{GOOD}]" in unit.depends_on
    entry = entry_point(spec, prefix(g, spec), GOOD)
    assert unit.diff is not None and f"{entry} gateway --port 18809" in unit.diff.replace('"', "")
    # no global install is planned with versioned installs
    assert "runtime.gateway" not in addresses(plan)
    g.converge(spec)
    root = prefix(g, spec) / GOOD
    assert (root / MARKER).is_file()
    # node runs the entry, as the gateway's own `gateway install` writes it
    words = exec_start(g, "clawdbot-gateway-ops.service").replace('"', "").split()
    assert words[0].endswith("/node") and words[1:] == [str(entry), "gateway", "--port", "18809"]
    assert [p.name for p in prefix(g, spec).iterdir()] == [GOOD]  # no temp left
    listing = g.probe(spec).facts.get(versions_probe(spec, g.host))
    assert [(v.version, v.usable) for v in listing.versions] == [(GOOD, True)]


def test_a_second_apply_runs_nothing(tmp_path: Path) -> None:
    g = host(tmp_path)
    spec = versioned_spec()
    g.converge(spec)
    g.fake.clear_calls()
    result = g.apply(spec)
    assert result.outcomes == []
    assert g.fake.mutating_calls() == []


def test_canary_two_profiles_on_two_versions(tmp_path: Path) -> None:
    g = host(tmp_path)
    spec = versioned_spec(
        GOOD, Profile("ops", 18809, gateway_version="2026.1.23"), Profile("personal", 18789)
    )
    plan = g.plan(spec)
    assert {"gateway.version[2026.1.23]", f"gateway.version[{GOOD}]"} <= set(addresses(plan))
    g.converge(spec)
    assert "/2026.1.23/" in exec_start(g, "clawdbot-gateway-ops.service")
    assert f"/{GOOD}/" in exec_start(g, "clawdbot-gateway-personal.service")
    probed = g.probe(spec)
    assert running_versions(spec, g.host, probed.facts) == {"ops": "2026.1.23", "personal": GOOD}


def test_an_update_shows_the_version_change_and_retention_keeps_one_previous(
    tmp_path: Path,
) -> None:
    g = host(tmp_path)
    g.converge(versioned_spec("2026.1.22", extra=False))
    g.converge(versioned_spec("2026.1.23", extra=False))
    plan = g.plan(versioned_spec(GOOD))
    unit = action_at(plan, "profile[ops].unit")
    assert unit is not None
    assert [(c.path, c.before, c.after) for c in unit.changes] == [
        ("gateway_version", "2026.1.23", GOOD)
    ]
    # keep=1: 2026.1.23, which runs now, stays as the previous version; 2026.1.22 goes, in the
    # same plan, after every unit moved (a running gateway's unit change is the health-gated
    # switch, which restarts it itself: no separate service restart is planned)
    prune = action_at(plan, "gateway.version[2026.1.22]")
    assert prune is not None and prune.kind == "delete"
    assert "profile[ops].unit" in prune.depends_on
    assert action_at(plan, "profile[ops].service") is None
    assert "gateway.version[2026.1.23]" not in addresses(plan)
    g.converge(versioned_spec(GOOD))
    names = sorted(p.name for p in prefix(g, versioned_spec()).iterdir())
    assert names == ["2026.1.23", GOOD]


def test_keep_zero_prunes_every_previous_version_after_the_switch(tmp_path: Path) -> None:
    g = host(tmp_path)
    g.converge(versioned_spec("2026.1.23", extra=False, keep=0))
    plan = g.plan(versioned_spec(GOOD, keep=0))
    # 2026.1.23 runs until the units move and restart (the switch): removed after, never before
    prune = action_at(plan, "gateway.version[2026.1.23]")
    assert prune is not None and "profile[ops].unit" in prune.depends_on
    order = addresses(plan)
    assert order.index("profile[ops].unit") < order.index("gateway.version[2026.1.23]")
    g.converge(versioned_spec(GOOD, keep=0))
    assert sorted(p.name for p in prefix(g, versioned_spec()).iterdir()) == [GOOD]


def test_retention_never_removes_a_version_a_unit_the_spec_does_not_own_runs(
    tmp_path: Path,
) -> None:
    """A profile dropped from the spec leaves its unit behind (reported, not pruned): its
    gateway still runs its version, which stays installed whatever `keep` says."""
    g = host(tmp_path)
    old = versioned_spec(
        "2026.1.23", Profile("ops", 18809), Profile("lab", 18829), extra=False, keep=0
    )
    g.converge(old)
    spec = versioned_spec(GOOD, Profile("ops", 18809), keep=0)
    plan = g.plan(spec)
    assert "gateway.version[2026.1.23]" not in addresses(plan)
    g.converge(spec)
    assert "/2026.1.23/" in exec_start(g, "clawdbot-gateway-lab.service")
    assert sorted(p.name for p in prefix(g, spec).iterdir()) == ["2026.1.23", GOOD]
    # once that unit is gone, keep: 0 prunes the version
    (g.home / ".config/systemd/user/clawdbot-gateway-lab.service").unlink()
    prune = action_at(g.plan(spec), "gateway.version[2026.1.23]")
    assert prune is not None and prune.kind == "delete"


def test_a_version_that_does_not_exist_fails_and_changes_nothing_that_runs(
    tmp_path: Path,
) -> None:
    g = host(tmp_path)
    g.converge(versioned_spec())
    before = exec_start(g, "clawdbot-gateway-ops.service")
    result = g.apply(versioned_spec("2026.9.9"))
    failed = {o.action.address: o for o in result.outcomes if o.outcome == "failed"}
    assert "gateway.version[2026.9.9]" in failed
    assert "ETARGET" in failed["gateway.version[2026.9.9]"].detail
    skipped = {o.action.address for o in result.outcomes if o.outcome == "skipped"}
    assert {"profile[ops].unit", "profile[personal].unit"} <= skipped
    assert exec_start(g, "clawdbot-gateway-ops.service") == before
    assert sorted(p.name for p in prefix(g, versioned_spec()).iterdir()) == [GOOD]


def test_a_release_that_cannot_print_its_version_is_never_renamed_into_place(
    tmp_path: Path,
) -> None:
    g = host(tmp_path)
    g.converge(versioned_spec())
    result = g.apply(versioned_spec(BROKEN))
    outcome = next(o for o in result.outcomes if o.action.address == f"gateway.version[{BROKEN}]")
    assert outcome.outcome == "failed"
    assert "--version check failed" in outcome.detail and "ERR_MODULE_NOT_FOUND" in outcome.detail
    assert sorted(p.name for p in prefix(g, versioned_spec()).iterdir()) == [GOOD]
    assert f"/{GOOD}/" in exec_start(g, "clawdbot-gateway-ops.service")


def test_without_the_extra_dependency_the_real_2026_1_24_3_fails_its_check(
    tmp_path: Path,
) -> None:
    g = host(tmp_path)
    result = g.apply(versioned_spec(GOOD, extra=False))
    outcome = next(o for o in result.outcomes if o.action.address == f"gateway.version[{GOOD}]")
    assert outcome.outcome == "failed" and "strip-ansi" in outcome.detail


def test_npm_or_node_missing_blocks_the_install_with_the_reason(tmp_path: Path) -> None:
    g = host(tmp_path)
    os.unlink(g.fake.bin_dir / "npm")
    action = action_at(g.plan(versioned_spec()), f"gateway.version[{GOOD}]")
    assert action is not None and action.blocked == "npm: not installed (it comes with node)"
    g.fake.set_node(None)
    plan = g.plan(versioned_spec())
    unit = action_at(plan, "profile[ops].unit")
    assert unit is not None and unit.blocked is not None and "node" in unit.blocked


def test_a_leftover_of_a_killed_install_is_removed_and_never_used(tmp_path: Path) -> None:
    g = host(tmp_path)
    spec = versioned_spec()
    g.converge(spec)
    leftover = prefix(g, spec) / ".install-2026.1.23-0123abcd"
    (leftover / "node_modules/clawdbot").mkdir(parents=True)
    half = prefix(g, spec) / "2026.1.23"  # renamed without a marker: not ours to run
    (half / "node_modules").mkdir(parents=True)
    plan = g.plan(spec)
    removal = action_at(plan, "gateway.leftover[.install-2026.1.23-0123abcd]")
    assert removal is not None and removal.kind == "delete"
    assert isinstance(removal.operations[0], RemoveTree)
    incomplete = action_at(plan, "gateway.version[2026.1.23]")
    assert incomplete is not None and "incomplete" in incomplete.reason
    g.converge(spec)
    assert sorted(p.name for p in prefix(g, spec).iterdir()) == [GOOD]


def _kill_npm_under(directory: Path) -> None:
    """npm runs in a session of its own (the runner kills its tree at a deadline): a killed
    reconciler leaves it running, as on a real host; end it like an admin would."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(str(directory).encode() in part for part in cmdline) and b"install" in cmdline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)


def test_kill_9_during_npm_changes_nothing_that_runs_and_the_next_apply_recovers(
    tmp_path: Path,
) -> None:
    """The apply is killed with SIGKILL while npm runs: nothing that runs changed; the next
    apply removes the leftover and installs."""
    g = host(tmp_path)
    g.converge(versioned_spec())
    before = exec_start(g, "clawdbot-gateway-ops.service")
    staging = prefix(g, versioned_spec())
    g.fake.hang_npm_install(True)
    pid = os.fork()
    if pid == 0:  # the "reconciler apply" that gets killed
        try:
            g.apply(versioned_spec("2026.1.23", extra=False))
        finally:
            os._exit(0)
    for _ in range(400):
        temp = [p for p in staging.iterdir() if p.name.startswith(".install-")]
        if temp and (temp[0] / "node_modules/.staging").exists():
            break
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    _kill_npm_under(staging)
    assert exec_start(g, "clawdbot-gateway-ops.service") == before
    names = sorted(p.name for p in staging.iterdir())
    assert GOOD in names and "2026.1.23" not in names
    assert any(n.startswith(".install-2026.1.23-") for n in names)
    g.fake.hang_npm_install(False)
    plan = g.plan(versioned_spec("2026.1.23", extra=False))
    assert any(a.startswith("gateway.leftover[.install-2026.1.23-") for a in addresses(plan))
    g.converge(versioned_spec("2026.1.23", extra=False))
    assert sorted(p.name for p in staging.iterdir()) == ["2026.1.23", GOOD]
    assert "/2026.1.23/" in exec_start(g, "clawdbot-gateway-ops.service")


def test_npm_is_killed_at_its_deadline(tmp_path: Path) -> None:
    g = host(tmp_path)
    spec = versioned_spec()
    g.fake.hang_npm_install(True)
    plan = g.plan(spec)
    action = action_at(plan, f"gateway.version[{GOOD}]")
    assert action is not None
    (op,) = action.operations
    assert isinstance(op, InstallVersion)
    g.runner.kill_grace_s = 0.2
    result = g.runner.execute(replace(op, timeout_s=1.0))
    assert not result.ok and "npm install failed" in result.detail and "timed out" in result.detail
    assert not any(prefix(g, spec).iterdir())  # the temporary directory was removed


def test_a_global_install_is_left_alone_and_reported(tmp_path: Path) -> None:
    g = host(tmp_path)
    g.fake.set_gateway(GOOD)  # `npm install -g` or the gateway's own `gateway install`
    probed = g.probe(versioned_spec())
    assert any("is a global install: left alone" in f.message for f in probed.plan.findings)
    g.converge(versioned_spec())
    assert g.fake.state()["gateway"]["clawdbot"] == GOOD
    assert not any("-g" in c["argv"] for c in g.fake.mutating_calls())


def _versions_cli(g: GatewayHost, spec: Spec, fmt: str = "human") -> str:
    import engine_on_fakehost as drive
    from click.testing import CliRunner

    from reconciler import cli as cli_module
    from reconciler.app.context import AppContext

    app = AppContext(
        spec_loader=lambda path: spec,
        discover_host=lambda s: g.host,
        make_runner=lambda h, mutating: drive.read_only_runner(g.fake, h),
    )
    result = CliRunner().invoke(
        cli_module.cli,
        ["versions", "spec.yaml", "--host-check=off", f"--format={fmt}"],
        obj=app,
    )
    assert result.exit_code == 0, result.output
    return result.output


def test_versions_command_lists_runs_wants_bad_marks_and_disk(tmp_path: Path) -> None:
    g = host(tmp_path)
    canary = versioned_spec(
        GOOD, Profile("ops", 18809, gateway_version="2026.1.23"), Profile("personal", 18789)
    )
    g.converge(canary)
    memory = g.home / ".local/state/reconciler"
    memory.mkdir(parents=True)
    (memory / "gateway-bad-versions.json").write_text(
        json.dumps(
            {
                "profiles": {
                    "ops": {
                        "version": BROKEN,
                        "failed_at": "2026-11-29T10:00:00Z",
                        "reason": "health",
                    }
                }
            }
        )
    )
    (prefix(g, canary) / ".install-2026.1.22-00aa11bb").mkdir()
    # the spec moves ops to a newer version: wanted but not installed yet
    moved = versioned_spec(GOOD, Profile("ops", 18809), Profile("personal", 18789))
    doc = json.loads(_versions_cli(g, moved, "json"))
    rows = {r["version"]: r for r in doc["versions"]}
    assert rows["2026.1.23"]["runs"] == ["ops"] and rows["2026.1.23"]["wanted_by"] == []
    assert rows[GOOD]["runs"] == ["personal"] and rows[GOOD]["wanted_by"] == ["ops", "personal"]
    assert rows[GOOD]["state"] == "installed" and rows[GOOD]["disk_bytes"] > 0
    assert doc["leftovers"] == [".install-2026.1.22-00aa11bb"]
    assert BROKEN not in rows  # marked bad, but not installed and not wanted
    text = _versions_cli(g, versioned_spec(BROKEN))
    assert "MARKED BAD" in text and "ops (2026-11-29T10:00:00Z)" in text
    assert "missing" in text


def with_prefix(spec: Spec, prefix: Path) -> Spec:
    gateway = replace(spec.runtime.gateway, prefix=str(prefix))
    return replace(spec, runtime=replace(spec.runtime, gateway=gateway))


def test_a_root_prefix_under_a_directory_others_can_write_is_blocked(tmp_path: Path) -> None:
    """A root-owned prefix under a data root the user can write (the red team's layout), or
    under the sticky /tmp: another account could swap what root installs and runs there."""
    g = host(tmp_path)
    g.host = replace(g.host, privileged=True)
    data_root = tmp_path / "srv-data"  # the user's
    for prefix in (data_root / "clawdbot", tmp_path / "opt" / "clawdbot"):
        spec = with_prefix(versioned_spec(), prefix)
        action = action_at(g.plan(spec), f"gateway.version[{GOOD}]")
        assert action is not None and action.blocked is not None, prefix
        assert "not a directory only root can change" in action.blocked
        assert "/tmp" in action.blocked


def test_a_root_owned_prefix_is_installed_as_root(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if os.geteuid() != 0:
        pytest.skip("a root-owned prefix needs the suite to run as root")
    import engine_on_fakehost as drive

    g = host(tmp_path)
    g.host = drive.host_context(g.fake, "root")
    g.runner = drive.host_runner(g.fake, g.host)
    # A host.data_roots entry in a real spec; every directory from / down root's and not
    # group- or world-writable (pytest's tmp_path is under the sticky, world-writable /tmp).
    base = Path(tempfile.mkdtemp(prefix="reconciler-test-", dir="/var/lib"))
    request.addfinalizer(lambda: shutil.rmtree(base, ignore_errors=True))
    base.chmod(0o755)
    root_prefix = base / "opt" / "clawdbot"
    spec = with_prefix(versioned_spec(), root_prefix)
    action = action_at(g.plan(spec), f"gateway.version[{GOOD}]")
    assert action is not None and action.needs_root and action.blocked is None
    (op,) = action.operations
    assert isinstance(op, InstallVersion) and op.scope == "system"
    g.converge(spec)
    assert (root_prefix / GOOD / MARKER).stat().st_uid == 0
    # the entry's --version check ran as the user, through runuser, never as root
    # (the fake node logs the entry it runs as the gateway's own `clawdbot --version`)
    checks = [c for c in g.fake.calls() if c["argv"] == ["clawdbot", "--version"]]
    assert checks and all(c["caller"] == "user" for c in checks), checks
    assert str(root_prefix / GOOD) in exec_start(g, "clawdbot-gateway-ops.service")
    # the user's units still run as the user: only the install is root's
    assert not any(
        c["caller"] == "root" and c["tool"] == "systemctl"
        for c in g.fake.mutating_calls()
        if "--user" not in c["argv"]
    )


def test_the_gateways_own_unit_is_adopted_and_reported_until_it_moves(tmp_path: Path) -> None:
    g = host(tmp_path)
    g.fake.set_gateway(GOOD)
    g.fake.install_gateway_unit("ops", port=18809)  # what `clawdbot gateway install` writes
    spec = versioned_spec(GOOD, Profile("ops", 18809))
    doc = json.loads(_versions_cli(g, spec, "json"))
    assert [r["profile"] for r in doc["running_elsewhere"]] == ["ops"]
    assert doc["versions"][0]["state"] == "missing"
    g.converge(spec)
    doc = json.loads(_versions_cli(g, spec, "json"))
    assert doc["running_elsewhere"] == []
    assert doc["versions"][0]["runs"] == ["ops"]


def test_doctor_and_devices_call_the_profiles_own_version(tmp_path: Path) -> None:
    from reconciler.facts.gateway_rpc import gateway_call

    g = host(tmp_path)
    spec = versioned_spec(
        GOOD, Profile("ops", 18809, gateway_version="2026.1.23"), Profile("personal", 18789)
    )
    assert gateway_call(spec, g.host, spec.profile("ops")) is None  # nothing installed yet
    g.converge(spec)
    call = gateway_call(spec, g.host, spec.profile("ops"))
    assert call is not None
    assert call.program == str(prefix(g, spec) / "2026.1.23/node_modules/.bin/clawdbot")
    printed = g.fake.run(call.program, "--version")
    assert printed.returncode == 0 and printed.stdout.strip() == "2026.1.23"


@pytest.mark.parametrize(
    ("leftover", "files"),
    [
        (".install-2026.1.23-00000001", ["package.json"]),  # killed before npm ran
        (".install-2026.1.23-00000002", ["package.json", "node_modules/clawdbot/package.json"]),
        # killed between the completion marker and the rename: still never used
        (".install-2026.1.23-00000003", ["package.json", "node_modules/x", MARKER]),
        (".remove-2026.1.22-00000004", ["node_modules/clawdbot/package.json"]),  # a removal
    ],
)
def test_a_kill_at_any_step_leaves_a_leftover_the_next_apply_removes(
    tmp_path: Path, leftover: str, files: list[str]
) -> None:
    g = host(tmp_path)
    g.converge(versioned_spec())
    before = exec_start(g, "clawdbot-gateway-ops.service")
    for name in files:
        path = prefix(g, versioned_spec()) / leftover / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("{}")
    plan = g.plan(versioned_spec())
    assert addresses(plan) == [f"gateway.leftover[{leftover}]"]  # nothing else moves
    g.converge(versioned_spec())
    assert exec_start(g, "clawdbot-gateway-ops.service") == before
    assert [p.name for p in prefix(g, versioned_spec()).iterdir()] == [GOOD]


# --- issue 22: overrides/extra changes reinstall; the plan shows the package.json -----------------


def test_the_plan_shows_the_package_json_a_version_is_installed_from(tmp_path: Path) -> None:
    g = host(tmp_path)
    spec = versioned_spec()
    install = action_at(g.plan(spec), f"gateway.version[{GOOD}]")
    assert install is not None and install.diff is not None
    target = prefix(g, spec) / GOOD / "package.json"
    assert install.diff.startswith(f"--- /dev/null\n+++ {target}\n")
    assert '+    "strip-ansi": "^7.1.0"\n' in install.diff
    assert '+    "libsignal": "npm:libsignal@6.0.0"\n' in install.diff


def test_changing_overrides_or_extra_of_an_installed_version_is_a_planned_reinstall(
    tmp_path: Path,
) -> None:
    g = host(tmp_path)
    spec = versioned_spec()
    g.converge(spec)
    running_entry = entry_point(spec, prefix(g, spec), GOOD)
    before = (prefix(g, spec) / GOOD / "package.json").read_text()
    gateway = replace(
        spec.runtime.gateway,
        overrides=(("libsignal", "npm:libsignal@6.0.0"), ("strip-ansi", "7.1.2")),
    )
    changed = replace(spec, runtime=replace(spec.runtime, gateway=gateway))
    plan = g.plan(changed)
    reinstall = action_at(plan, f"gateway.version[{GOOD}]")
    assert reinstall is not None and reinstall.kind == "update" and reinstall.blocked is None
    assert "installed from another package.json" in reinstall.reason
    (op,) = reinstall.operations
    assert isinstance(op, InstallVersion) and op.replace
    assert [(c.path, c.before, c.after) for c in reinstall.changes] == [
        ("package.json.overrides.strip-ansi", "(absent)", "7.1.2")
    ]
    assert reinstall.diff is not None and '+    "strip-ansi": "7.1.2"\n' in reinstall.diff
    assert "profile[ops].service" in reinstall.triggers  # it runs that version: restarted
    g.converge(changed)
    after = (prefix(g, spec) / GOOD / "package.json").read_text()
    assert after != before and json.loads(after)["overrides"]["strip-ansi"] == "7.1.2"
    assert (prefix(g, spec) / GOOD / MARKER).is_file() and running_entry.is_file()
    assert [p.name for p in prefix(g, spec).iterdir()] == [GOOD]  # nothing aside left
    g.fake.clear_calls()
    assert g.apply(changed).outcomes == []  # converged: the same package.json plans nothing


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another uid needs root")
def test_a_version_directory_another_account_owns_is_blocked_never_used(tmp_path: Path) -> None:
    # issue 22: whoever owns a version directory can change the code a unit runs.
    g = host(tmp_path)
    spec = versioned_spec()
    g.converge(spec)
    target = prefix(g, spec) / GOOD
    owner = os.lstat(target).st_uid
    os.chown(target, owner + 4242, owner + 4242)
    install = action_at(g.plan(spec), f"gateway.version[{GOOD}]")
    assert install is not None and install.blocked is not None
    assert f"{target} belongs to uid {owner + 4242}" in install.blocked
    assert f"rm -r {target}" in install.blocked
    assert install.operations == ()  # never removed nor reinstalled by us

"""Root is never a confused deputy (issue 11 #2-4): file work and reads run as the spec's user.

Real uid drops (the suite runs as root here): a fake host's user has uid 1000, a victim another
uid or root. Every component of every path a plan touches is replaced by a symlink into a victim
tree, both before planning (probes) and between the plan and the action (the confirmation
prompt), and nothing in the victim trees may change, nor any root-only byte reach a fact.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import engine_on_fakehost as drive
import pytest
from fakehost import FakeHost

from reconciler.core.action import EnsureDirectory, EnsureSecretEnv, RemoveFile, WriteFile
from reconciler.core.host import Account, HostContext
from reconciler.core.plan import Plan
from reconciler.core.probe import BatchedProbe, ProbeFailed, ProbeSession
from reconciler.facts.files import PathState
from reconciler.kinds import all_kinds
from reconciler.spec.model import (
    GatewayRuntime,
    Host,
    Node,
    Profile,
    Reconcile,
    Runtime,
    Spec,
    Timer,
)
from reconciler.system import as_user
from reconciler.system.as_user import ChildFailed, acting_account, call_as

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="drops to other uids: needs root")

VICTIM_UID = 1001
ROOT_MARK = "ROOT-ONLY-d41d8cd9"
OTHER_MARK = "OTHER-USER-8f00b204"
FILE_OPS = (EnsureDirectory, WriteFile, EnsureSecretEnv, RemoveFile)
SPEC = Spec(
    host=Host("vm102", "user"),
    runtime=Runtime(
        node=Node(range=">=22.12"), gateway=GatewayRuntime("clawdbot", start_timeout_s=2)
    ),
    profiles=(Profile("ops", 18809, auth="token", prune=True),),
    prune_units=True,
    reconcile=Reconcile(timer=Timer(enabled=True)),
)


# --- the primitive -------------------------------------------------------------------------------


def account(uid: int = 1000, gid: int = 1000) -> Account:
    return Account("rp-test-nobody", uid, gid, Path("/nonexistent"))


def test_the_child_has_exactly_the_users_ids_and_no_root_group() -> None:
    got = call_as(account(), lambda: [os.getresuid(), os.getresgid(), os.getgroups()])
    assert got == [[1000] * 3, [1000] * 3, [1000]]
    assert os.geteuid() == 0 and os.getegid() == 0  # the parent keeps root


def test_the_kernel_checks_the_users_permissions(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text(ROOT_MARK)
    secret.chmod(0o600)
    tmp_path.chmod(0o755)
    with pytest.raises(PermissionError) as caught:
        call_as(account(), lambda: secret.read_text())
    assert caught.value.filename == str(secret)
    assert secret.read_text() == ROOT_MARK  # root itself still can


def test_a_child_that_dies_is_a_failure_not_a_hang() -> None:
    with pytest.raises(ChildFailed, match="acting as rp-test-nobody was killed by signal 9"):
        call_as(account(), lambda: os.kill(os.getpid(), signal.SIGKILL))
    with pytest.raises(ChildFailed, match="ZeroDivisionError"):
        call_as(account(), lambda: 1 // 0)


def test_secrets_the_child_learns_are_masked_in_the_parent(tmp_path: Path) -> None:
    # Redaction by value (core/secrets.py) is a memory of this process: a token generated or a
    # value read by the child acting as the user must be masked by the parent (root) as well.
    from reconciler.core.secrets import MASK, mask_secrets, remember_secret
    from reconciler.facts.files import PathProbe
    from reconciler.shell.runner import HostRunner

    generated = "child-generated-0123456789abcdef"
    assert call_as(account(), lambda: remember_secret(generated)) is None
    assert mask_secrets(f"x {generated} y", learn=False) == f"x {MASK} y"
    with pytest.raises(ChildFailed, match="RuntimeError"):
        call_as(account(), lambda: (remember_secret("child-then-failed-42"), _raise())[0])
    assert mask_secrets("child-then-failed-42", learn=False) == MASK

    tmp_path.chmod(0o711)
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    os.chown(home, 1000, 1000)
    user = Account("user", 1000, 1000, home)
    host = HostContext("h", Account("root", 0, 0, Path("/root")), user, "user")
    env = home / "gateway.env"
    result = HostRunner(host).execute(EnsureSecretEnv(env, "K_TOKEN", 0o600, "user"))
    assert result.ok and result.detail == "generated" and env.stat().st_uid == 1000
    token = env.read_text().strip().partition("=")[2]
    assert len(token) == 64 and mask_secrets(token, learn=False) == MASK

    read = home / "config.yaml"
    read.write_text("gateway:\n  password: read-by-the-child-77\n")
    os.chown(read, 1000, 1000)
    PathProbe(read, content=True).read(host)
    assert mask_secrets("read-by-the-child-77", learn=False) == MASK


def _raise() -> None:
    raise RuntimeError("after learning a secret")


def test_a_hung_child_is_killed_at_its_deadline_and_holds_none_of_our_files(
    tmp_path: Path,
) -> None:
    with pytest.raises(ChildFailed, match="timed out"):
        call_as(account(), lambda: time.sleep(30), timeout_s=0.3)
    # a descriptor we hold (the apply lock, say) is not held by the child as well
    with open(tmp_path / "lock", "w") as held:
        inherited = call_as(account(), lambda: _is_open(held.fileno()))
        assert _is_open(held.fileno()) and not inherited


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def test_only_root_acting_for_another_user_drops() -> None:
    user = Account("user", 1000, 1000, Path("/home/user"))
    root = Account("root", 0, 0, Path("/root"))

    def ctx(invoker: Account, spec_user: Account | None) -> HostContext:
        return HostContext("h", invoker, spec_user, "user")

    assert acting_account(ctx(root, user)) == user
    assert acting_account(ctx(user, user)) is None  # we are the user
    assert acting_account(ctx(root, None)) is None  # nobody to drop to (actions are blocked)
    assert acting_account(ctx(root, root)) is None  # the spec's user is root


# --- the attack matrix on a fake host ------------------------------------------------------------


@dataclass
class World:
    fake: FakeHost
    host: HostContext
    plan: Plan  # planned on a clean host, as root: what the prompt showed
    victims: Path
    touched: list[tuple[Path, bool]]  # (path relative to home, is a directory)
    clean_home: Path  # a copy of the home as it was planned


def _tree(root: Path) -> dict[str, tuple[Any, ...]]:
    """Every entry under `root`: type, mode, owner, group, content (as root: the ground truth)."""
    out: dict[str, tuple[Any, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            path = Path(dirpath) / name
            info = path.lstat()
            body = path.read_bytes() if stat.S_ISREG(info.st_mode) else None
            out[str(path.relative_to(root))] = (
                stat.S_IFMT(info.st_mode),
                stat.S_IMODE(info.st_mode),
                info.st_uid,
                info.st_gid,
                body,
            )
    return out


def _file_paths(plan: Plan) -> list[Path]:
    return [op.path for a in plan.actions for op in a.operations if isinstance(op, FILE_OPS)]


def _populate(victim: Path, uid: int, dir_mode: int, mark: str, touched: list[tuple[Path, bool]]):  # type: ignore[no-untyped-def]
    """A victim tree where every path a redirected write could land on already exists."""
    victim.mkdir(mode=dir_mode)
    for rel, is_dir in touched:
        parts = rel.parts
        for start in range(len(parts)):
            target = victim.joinpath(*parts[start:])
            target.parent.mkdir(parents=True, exist_ok=True)
            if is_dir:
                target.mkdir(exist_ok=True)
            elif not target.exists():
                target.write_text(f"{mark} {rel}\nCLAWDBOT_GATEWAY_TOKEN={mark}\n")
    (victim / "secret").write_text(f"{mark}\n")
    for dirpath, _dirnames, filenames in os.walk(victim):
        os.chown(dirpath, uid, uid)
        os.chmod(dirpath, dir_mode)
        for name in filenames:
            os.chown(os.path.join(dirpath, name), uid, uid)
            os.chmod(os.path.join(dirpath, name), 0o600)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    base = tmp_path_factory.mktemp("attacks")
    with FakeHost(base / "host") as fake:
        fake.set_node("v22.12.0")
        fake.set_gateway("2026.1.24-3")
        fake.set_linger(fake.user, True)
        fake.install_gateway_unit(port=18789)  # a legacy unit: the plan removes its file
        host = drive.host_context(fake, "root")
        plan = drive.plan(fake, SPEC, host)
        assert not plan.errors, plan.errors
        paths = _file_paths(plan)
        assert {type(op) for a in plan.actions for op in a.operations} >= set(FILE_OPS)
        dirs = {
            op.path for a in plan.actions for op in a.operations if isinstance(op, EnsureDirectory)
        }
        touched = [(p.relative_to(fake.home), p in dirs) for p in paths]
        victims = base / "victims"
        victims.mkdir()
        victims.chmod(0o755)
        _populate(victims / "root-owned", 0, 0o755, ROOT_MARK, touched)
        _populate(victims / "other-user", VICTIM_UID, 0o700, OTHER_MARK, touched)
        clean = base / "clean-home"
        shutil.copytree(fake.home, clean, symlinks=True)
        yield World(fake, host, plan, victims, touched, clean)


def _components(world: World) -> list[tuple[Path, bool]]:
    """Every component under the home of every touched path, parents included: (rel, leaf file)."""
    seen: dict[Path, bool] = {}
    for rel, is_dir in world.touched:
        for i in range(1, len(rel.parts) + 1):
            part = Path(*rel.parts[:i])
            seen.setdefault(part, i == len(rel.parts) and not is_dir)
    return sorted(seen.items())


def _reset_home(world: World) -> None:
    home = world.fake.home
    shutil.rmtree(home)
    shutil.copytree(world.clean_home, home, symlinks=True)
    for dirpath, dirnames, filenames in os.walk(home):
        for name in [dirpath, *(os.path.join(dirpath, n) for n in dirnames + filenames)]:
            os.lchown(name, world.fake.uid, world.fake.uid)


def _plant(world: World, rel: Path, target: Path) -> None:
    link = world.fake.home / rel
    if link.is_dir() and not link.is_symlink():
        shutil.rmtree(link)
    elif link.exists() or link.is_symlink():
        link.unlink()
    link.parent.mkdir(parents=True, exist_ok=True)
    for parent in [link.parent, *link.parent.parents]:
        if parent == world.fake.home:
            break
        os.lchown(parent, world.fake.uid, world.fake.uid)
    link.symlink_to(target)
    os.lchown(link, world.fake.uid, world.fake.uid)


def _read_facts(world: World, planted: Path) -> list[Any]:
    """Every in-process probe of every kind whose path can meet the link planted at `planted`
    (through it, or listing it), read as root reads it for a plan or a snapshot: what the kinds
    discover first, then the probes they declare from what was discovered."""
    values = []
    link = world.fake.home / planted
    kinds = all_kinds()
    discovered = [p for kind in kinds for p in kind.discover(SPEC, world.host)]
    session = ProbeSession(world.host, drive.read_only_runner(world.fake, world.host).run)
    found = session.collect(discovered)
    probes: list[Any] = list(discovered)
    for kind in kinds:
        with contextlib.suppress(ProbeFailed):  # a discovery the link made fail: no probes
            probes.extend(kind.probes(SPEC, world.host, found))
    for probe in dict.fromkeys(probes):
        path = getattr(probe, "path", None)
        if isinstance(probe, BatchedProbe) or probe.command(world.host) is not None:
            continue
        if path is None or not (path.is_relative_to(link) or link.is_relative_to(path)):
            continue
        try:
            values.append(probe.read(world.host))
        except OSError as exc:  # a read refused is fine; a leak is not
            values.append(str(exc))
    return values


def _texts(value: Any) -> Iterator[str]:
    if isinstance(value, PathState):
        yield from (t for t in (value.text, value.error) if t)
    elif isinstance(value, str):
        yield value
    elif hasattr(value, "__dataclass_fields__"):
        for name in value.__dataclass_fields__:
            yield from _texts(getattr(value, name))
    elif isinstance(value, (tuple, list)):
        for item in value:
            yield from _texts(item)


def _attack(world: World, rel: Path, target: Path) -> list[str]:
    """Plant `rel` -> `target`, read every probe, then run the plan made before the plant."""
    _reset_home(world)
    _plant(world, rel, target)
    leaks = [t for t in _texts(_read_facts(world, rel)) if ROOT_MARK in t or OTHER_MARK in t]
    runner = drive.host_runner(world.fake, world.host)
    for action in world.plan.actions:
        for op in action.operations:
            if isinstance(op, FILE_OPS):
                runner.execute(op)  # may fail (refused by the kernel); must never raise
    return leaks


def _targets(world: World, rel: Path, leaf_file: bool) -> list[Path]:
    out = []
    for victim in ("root-owned", "other-user"):
        tree = world.victims / victim
        out.append(tree / "secret" if leaf_file else tree)
        out.append(tree / rel.name if not leaf_file else tree)  # the mirrored name, or a dir
    return out


def test_a_symlink_at_any_component_of_any_path_changes_nothing_outside_the_users_rights(
    world: World,
) -> None:
    before = _tree(world.victims)
    attacks = [
        (rel, target)
        for rel, leaf_file in _components(world)
        for target in _targets(world, rel, leaf_file)
    ]
    assert len(attacks) >= 40  # every component, parents included, times four targets
    for rel, target in attacks:
        leaks = _attack(world, rel, target)
        assert leaks == [], f"{rel} -> {target}: a fact holds victim data"
        assert _tree(world.victims) == before, f"{rel} -> {target} changed a victim"


def test_the_matrix_would_catch_root_following_a_planted_parent(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The control: with the drop disabled (root doing the work itself, as before issue 11), one
    # planted parent is enough to change a victim, so the test above can fail.
    monkeypatch.setattr(as_user, "call_as", lambda account, work: work())
    monkeypatch.setattr("reconciler.shell.runner.call_as", lambda account, work: work())
    monkeypatch.setattr("reconciler.facts.files.call_as", lambda account, work: work())
    before = _tree(world.victims)
    _attack(world, Path(".clawdbot-ops"), world.victims / "root-owned")
    assert _tree(world.victims) != before  # root wrote through the linked parent
    leaks = _attack(
        world,
        Path(".config/systemd/user/clawdbot-gateway.service"),
        world.victims / "root-owned" / "secret",
    )
    assert leaks  # root read a root-only file into a fact
    # put the victims back for any later test
    shutil.rmtree(world.victims / "root-owned")
    _populate(world.victims / "root-owned", 0, 0o755, ROOT_MARK, world.touched)


def test_after_the_attacks_a_clean_home_still_converges_as_the_user(world: World) -> None:
    _reset_home(world)
    outcome = drive.apply(world.fake, SPEC, world.host)
    assert outcome.ok, [(o.action.address, o.detail) for p in outcome.passes for o in p.outcomes]
    state = world.fake.home / ".clawdbot-ops"
    for path in (state, state / "credentials", state / "gateway.env", state / "clawdbot.json"):
        info = path.lstat()
        assert (info.st_uid, info.st_gid) == (world.fake.uid, world.fake.uid), path
    unit = world.fake.home / ".config/systemd/user/clawdbot-gateway-ops.service"
    assert unit.lstat().st_uid == world.fake.uid


# --- the findings of issue 11, each as it was reported --------------------------------------------


def test_finding_3_a_state_dir_swapped_for_a_link_at_the_prompt_changes_nothing(
    world: World,
) -> None:
    # The prompt showed a plan for a real ~/.clawdbot-ops (too open: 0755, no credentials/);
    # while root read it, the user replaced the directory with a link to another user's state.
    _reset_home(world)
    state = world.fake.home / ".clawdbot-ops"
    state.mkdir(mode=0o755)
    os.chown(state, world.fake.uid, world.fake.uid)
    plan = drive.plan(world.fake, SPEC, world.host)
    fixes = [a for a in plan.actions if a.address == "profile[ops].state"]
    assert fixes and not plan.errors
    other = world.victims / "other-user"
    before = _tree(world.victims)
    state.rmdir()
    state.symlink_to(other)
    os.lchown(state, world.fake.uid, world.fake.uid)
    result = drive.host_runner(world.fake, world.host).execute(fixes[0].operations[0])
    assert not result.ok and result.detail.startswith("a symlink is here, and it is not followed")
    assert _tree(world.victims) == before
    assert stat.S_IMODE((other / "credentials").stat().st_mode) == 0o700
    assert (other / "credentials").stat().st_uid == VICTIM_UID


def test_finding_2_a_linked_parent_no_longer_redirects_root(world: World) -> None:
    # ~/.local/share -> a root-owned directory; the state dir below it must not appear there.
    _reset_home(world)
    root_dir = world.victims / "root-owned"
    _plant(world, Path(".local/share"), root_dir)
    op = EnsureDirectory(world.fake.home / ".local/share/clawdbot-ops", 0o700, "user")
    result = drive.host_runner(world.fake, world.host).execute(op)
    assert not result.ok and result.detail.startswith("Permission denied")
    assert not (root_dir / "clawdbot-ops").exists()


def test_finding_4_a_unit_linked_to_a_root_only_file_never_reaches_a_snapshot(
    world: World,
) -> None:
    from reconciler.app.review import record_host
    from reconciler.review.snapshot import snapshot_text

    _reset_home(world)
    secret = world.victims / "root-owned" / "secret"
    units = world.fake.home / ".config/systemd/user"
    for name in ("clawdbot-gateway-ops.service", "clawdbot-gateway-evil.service"):
        (units / name).unlink(missing_ok=True)
        (units / name).symlink_to(secret)
        os.lchown(units / name, world.fake.uid, world.fake.uid)
    snapshot, _ = record_host(
        SPEC, world.host, drive.read_only_runner(world.fake, world.host), all_kinds()
    )
    text = snapshot_text(snapshot)
    assert ROOT_MARK not in text
    assert "clawdbot-gateway-evil.service" in text  # it was looked at, as the user


def test_finding_1_root_refuses_an_existing_directory_someone_else_owns(world: World) -> None:
    # A data root the admin created, holding a directory that belongs to root (or to anyone but
    # the spec's user): planned as root, it is a plan error naming the path and its owner.
    _reset_home(world)
    target = world.victims / "root-owned" / "credentials"
    spec = Spec(
        host=Host("vm102", "user", data_roots=(str(world.victims),)),
        runtime=SPEC.runtime,
        profiles=(Profile("ops", 18809, state_dir=str(target)),),
    )
    before = _tree(world.victims)
    plan = drive.plan(world.fake, spec, world.host)
    assert f"profile[ops].state: {target} exists and belongs to root, not user; " in "\n".join(
        plan.errors
    )
    assert not any(a.address == "profile[ops].state" for a in plan.actions)
    assert _tree(world.victims) == before


def test_a_read_as_the_user_names_the_owner_in_the_parent(tmp_path: Path) -> None:
    import pwd

    from reconciler.facts.files import PathProbe

    tmp_path.chmod(0o711)
    mine = tmp_path / "mine"
    mine.mkdir(mode=0o700)
    os.chown(mine, 1000, 1000)
    user = Account("user", 1000, 1000, tmp_path)
    host = HostContext("h", Account("root", 0, 0, Path("/root")), user, "user")
    state = PathProbe(mine).read(host)
    try:
        expected = pwd.getpwuid(1000).pw_name
    except KeyError:
        expected = "1000"
    assert (state.kind, state.uid, state.owner, state.mode) == ("directory", 1000, expected, 0o700)

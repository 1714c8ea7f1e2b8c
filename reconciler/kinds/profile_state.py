"""Profile state roots and workspaces: the directories a gateway profile keeps its data in.

Wants: per profile, the state root (`state_dir`, default the product's `~/.clawdbot-<profile>`;
`default` has no suffix) and its `credentials/` subdirectory, both directories owned by the spec's
user with mode 0700 (the gateway keeps tokens, sessions and device keys there); the workspace
(`workspace`, default `~/clawd-<profile>`) exists. `~` is the spec user's home on this host.
Probes: lstat of each path, in-process; a symlink is reported as a symlink, never followed.
Compares: type, permission bits and owning uid of the state root and `credentials/`. An
existing directory another account owns is never taken over: as root it is a plan error (root
could chown it, but a spec naming `/etc` or another user's home, or a link planted by the user,
would make root hand it over); otherwise a warning (a plan holds no action that cannot succeed).
Only existence for the workspace (it is the user's working tree: an existing one is never
chmod-ed; one we create gets 0700). Every change is made as the spec's user
(reconciler.system.as_user), so directories created are theirs by construction.
Fixes: `EnsureDirectory` (create with parents, or fix mode/owner). A symlink or a file where a
directory should be is a plan error: following it could chmod or chown whatever it points at.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from reconciler.core.action import Action, EnsureDirectory, Finding, KindPlan, Operation
from reconciler.core.diff import attribute_changes
from reconciler.core.host import HostContext
from reconciler.core.kind import NEEDS_USER, NO_FACTS, Kind, register, spec_user
from reconciler.core.probe import Facts, Probe
from reconciler.facts.files import PathProbe, PathState
from reconciler.facts.profile_files import foreign_owner, owner_drift, owner_name
from reconciler.gateway.addresses import state_address, workspace_address
from reconciler.gateway.paths import ProfilePaths, placeholder_host, profile_paths
from reconciler.spec.model import Spec

STATE_MODE = 0o700
WORKSPACE_MODE = 0o700


def _desired(user: str, host: HostContext) -> dict[str, Any]:
    """Mode, and the owner when we are root (anyone else creates directories as themselves)."""
    return {"mode": f"{STATE_MODE:04o}"} | ({"owner": user} if host.is_root else {})


def _actual(state: PathState, host: HostContext) -> dict[str, Any]:
    """A directory as compared ({} when absent, shown as created)."""
    if not state.exists:
        return {}
    return {"mode": f"{state.mode or 0:04o}"} | (
        {"owner": owner_name(state, host)} if host.is_root else {}
    )


@register(30)
class ProfileStateKind(Kind):
    name = "profile.state"
    needs = NEEDS_USER  # `~` cannot be resolved without them: nothing to look at

    def placeholders(self, spec: Spec, host: HostContext) -> Iterable[Action]:
        for profile in spec.profiles:
            paths = profile_paths(spec, profile, host)
            yield Action(
                state_address(paths.profile),
                "create",
                f"profile {paths.profile} keeps its state in {paths.state}",
                (
                    EnsureDirectory(paths.state, STATE_MODE, host.user_name),
                    EnsureDirectory(paths.credentials, STATE_MODE, host.user_name),
                ),
            )
            yield _new_workspace(paths, host)

    def desired(self, spec: Spec, home: Path) -> Mapping[str, Any]:
        """Every profile's state root, credentials directory and workspace."""
        host = placeholder_host(spec, home)
        out = {}
        for profile in spec.profiles:
            paths = profile_paths(spec, profile, host)
            out[profile.name] = {
                "state_dir": str(paths.state),
                "credentials_dir": str(paths.credentials),
                "workspace": str(paths.workspace),
            }
        return {"profiles": out}

    def probes(
        self, spec: Spec, host: HostContext, found: Facts = NO_FACTS
    ) -> Iterable[Probe[Any]]:
        for profile in spec.profiles:
            paths = profile_paths(spec, profile, host)
            yield PathProbe(paths.state)
            yield PathProbe(paths.credentials)
            yield PathProbe(paths.workspace)

    def plan(self, spec: Spec, host: HostContext, facts: Facts) -> KindPlan:
        actions: list[Action] = []
        findings: list[Finding] = []
        errors: list[str] = []
        for profile in spec.profiles:
            paths = profile_paths(spec, profile, host)
            state, state_errors = plan_state(paths, host, facts)
            workspace, workspace_errors = plan_workspace(paths, host, facts)
            errors.extend(state_errors + workspace_errors)
            actions.extend(a for a in (state, workspace) if a is not None)
            if not state_errors:
                findings.extend(state_findings(paths, host, facts))
        return KindPlan(actions=tuple(actions), findings=tuple(findings), errors=tuple(errors))


def plan_state(
    paths: ProfilePaths, host: HostContext, facts: Facts
) -> tuple[Action | None, list[str]]:
    """The state root and `credentials/`: the action that fixes them, or the errors found."""
    user = spec_user(host)
    operations: list[Operation] = []
    desired: dict[str, Any] = {}
    actual: dict[str, Any] = {}
    errors: list[str] = []
    root = facts.get(PathProbe(paths.state))
    for label, path in (("state", paths.state), ("credentials", paths.credentials)):
        found = root if path == paths.state else facts.get(PathProbe(path))
        problem = _not_a_directory(found)
        if problem:
            errors.append(f"{state_address(paths.profile)}: {problem}")
            break
        if owner_drift(found, host):
            # Root could chown it, but must not: a spec (or a link the user planted) naming
            # someone else's directory would hand it to the spec's user.
            errors.append(f"{state_address(paths.profile)}: {taken(found, host)}")
            break
        if foreign_owner(state_address(paths.profile), found, host):
            continue  # not ours to chmod either: reported by `state_findings`
        if found.exists and found.mode == STATE_MODE:
            continue
        operations.append(EnsureDirectory(path, STATE_MODE, user.name))
        desired[label] = _desired(user.name, host)
        actual[label] = _actual(found, host)
    if errors or not operations:
        return None, errors
    return (
        Action(
            state_address(paths.profile),
            "create" if not root.exists else "update",
            (
                f"profile {paths.profile} keeps its state in {paths.state}"
                if not root.exists
                else f"{paths.state} and its credentials/ must be {STATE_MODE:04o}, "
                f"owned by {user.name} (they hold tokens and keys)"
            ),
            tuple(operations),
            changes=attribute_changes(desired, actual),
        ),
        [],
    )


def state_findings(paths: ProfilePaths, host: HostContext, facts: Facts) -> list[Finding]:
    """State directories another user owns, which only root could give back."""
    found = (
        foreign_owner(state_address(paths.profile), facts.get(PathProbe(p)), host)
        for p in (paths.state, paths.credentials)
    )
    return [f for f in found if f is not None]


def plan_workspace(
    paths: ProfilePaths, host: HostContext, facts: Facts
) -> tuple[Action | None, list[str]]:
    """The workspace: created (0700) when missing, never touched when it exists."""
    found = facts.get(PathProbe(paths.workspace))
    problem = _not_a_directory(found)
    if problem:
        return None, [f"{workspace_address(paths.profile)}: {problem}"]
    if found.exists:
        return None, []
    return _new_workspace(paths, host), []


def _new_workspace(paths: ProfilePaths, host: HostContext) -> Action:
    return Action(
        workspace_address(paths.profile),
        "create",
        f"profile {paths.profile} works in {paths.workspace}",
        (EnsureDirectory(paths.workspace, WORKSPACE_MODE, host.user_name),),
        changes=attribute_changes({"exists": True}, {"exists": False}),
    )


def taken(found: PathState, host: HostContext) -> str:
    """Why an existing directory another account owns is refused (a plan error)."""
    user = host.user.name if host.user is not None else host.user_name
    return (
        f"{found.path} exists and belongs to {owner_name(found, host)}, not {user}; "
        f"refusing to take it over (if it really is {user}'s, chown it to {user} yourself; "
        "otherwise point the spec at another path)"
    )


def _not_a_directory(found: PathState) -> str | None:
    if found.kind == "symlink":
        return (
            f"{found.path} is a symlink; a directory must be here (it is not followed: "
            "replace the link with the directory, or point the spec at the real path)"
        )
    if found.kind in ("file", "other"):
        return f"{found.path} exists and is not a directory (move it away)"
    return None

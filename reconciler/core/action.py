"""Actions: one idempotent step of a plan, with its address, kind, operations and reasons."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import field
from pathlib import Path
from typing import Any, ClassVar, Literal, get_args

from reconciler.core.command import Command
from reconciler.frozen import frozen

ActionKind = Literal["create", "update", "delete", "verify"]

# What a change of an attribute looks like to a reviewer. SENSITIVE replaces secret values.
SENSITIVE = "(sensitive)"


# --- what an operation says about itself -------------------------------------------------------
#
# Every operation type lists its fields once (`fields()`); the JSON plan document
# (render/json_plan.py) and the saved-plan fingerprint (review/saved_plan.py) are both generated
# from that one walk, so a new operation type cannot be shown in one and forgotten in the other.
# Values that the two render differently are wrapped in the small types below.


@frozen
class Mode:
    """A permission mode: `"0644"` in the plan document, the integer in the fingerprint."""

    bits: int


@frozen
class Argv:
    """A command's argv: as it will run (sudo/runuser added) in the plan, as defined in the
    fingerprint (who renders it must not change what a reviewer approved)."""

    command: Command


@frozen
class CommandLine:
    """A command's argv as one shell-quoted line, as it will run (plan document only)."""

    command: Command


@frozen
class CannotRun:
    """Why this host refuses the command (sudo policy), or None (plan document only)."""

    command: Command


@frozen
class Digest:
    """The sha256 of a text (None stays None): the fingerprint holds hashes, never contents."""

    text: str | None


@frozen
class OperationField:
    """One field of an operation: its name, its value, and which documents carry it."""

    name: str
    value: Any
    in_plan: bool = True  # the JSON plan document (render/json_plan.py)
    in_fingerprint: bool = True  # the saved-plan fingerprint (review/saved_plan.py)


def plan_only(name: str, value: Any) -> OperationField:
    return OperationField(name, value, in_fingerprint=False)


def fingerprint_only(name: str, value: Any) -> OperationField:
    return OperationField(name, value, in_plan=False)


def _shown_state(op: Any) -> tuple[OperationField, ...]:
    """The fields every operation shows in the plan document after its own."""
    return (
        plan_only("description", op.describe()),
        plan_only("needs_root", op.needs_root),
        plan_only("mutating", op.mutating),
    )


@frozen
class RunCommand:
    """Run a command on the host."""

    type_name: ClassVar[str] = "command"

    command: Command

    def fields(self) -> tuple[OperationField, ...]:
        command = self.command
        return (
            OperationField("argv", Argv(command)),
            OperationField("scope", command.scope),
            plan_only("timeout_s", command.timeout_s),
            plan_only("cannot_run", CannotRun(command)),
            plan_only("description", CommandLine(command)),
            OperationField("needs_root", command.needs_root),
            OperationField("mutating", command.mutating),
            fingerprint_only("stdin_sha256", Digest(command.stdin)),
        )

    @property
    def mutating(self) -> bool:
        return self.command.mutating

    @property
    def needs_root(self) -> bool:
        return self.command.needs_root

    def describe(self) -> str:
        return self.command.display()


@frozen
class WriteFile:
    """Write a file atomically (temp, fsync, rename), keeping a backup of the previous one.

    `content` is produced at plan time; for sensitive files (`sensitive=True`) it is never shown.
    `generate_secret` names a key whose random value is created at apply time and never printed.
    """

    path: Path
    content: str
    mode: int
    owner: str | None = None  # user name; None: whoever runs us
    backup: bool = True
    sensitive: bool = False
    needs_root: bool = False

    mutating = True
    type_name: ClassVar[str] = "write_file"

    def fields(self) -> tuple[OperationField, ...]:
        return (
            OperationField("path", self.path),
            OperationField("mode", Mode(self.mode)),
            OperationField("owner", self.owner),
            OperationField("backup", self.backup),
            OperationField("sensitive", self.sensitive),
            # A hash of a low-entropy secret could be guessed: sensitive contents are not hashed.
            fingerprint_only("content_sha256", Digest(None if self.sensitive else self.content)),
            *_shown_state(self),
        )

    def describe(self) -> str:
        return f"write {self.path} (mode {self.mode:04o}{', backup kept' if self.backup else ''})"


@frozen
class EnsureDirectory:
    """Create a directory (and parents) with this mode and owner, or fix both."""

    path: Path
    mode: int
    owner: str | None = None
    needs_root: bool = False

    mutating = True
    type_name: ClassVar[str] = "ensure_directory"

    def fields(self) -> tuple[OperationField, ...]:
        return (
            OperationField("path", self.path),
            OperationField("mode", Mode(self.mode)),
            OperationField("owner", self.owner),
            *_shown_state(self),
        )

    def describe(self) -> str:
        who = f", owner {self.owner}" if self.owner else ""
        return f"ensure directory {self.path} (mode {self.mode:04o}{who})"


@frozen
class RemoveFile:
    """Remove a file, keeping a backup beside it."""

    path: Path
    backup: bool = True
    needs_root: bool = False

    mutating = True
    type_name: ClassVar[str] = "remove_file"

    def fields(self) -> tuple[OperationField, ...]:
        return (
            OperationField("path", self.path),
            OperationField("backup", self.backup),
            *_shown_state(self),
        )

    def describe(self) -> str:
        return f"remove {self.path}" + (" (backup kept)" if self.backup else "")


@frozen
class MoveAside:
    """Rename `path` (never followed: a symlink is moved as the link) to `<name><suffix>` in
    the same directory, as the account that owns the directory; nothing to do when absent.
    What a restore in place does to the live state before restic writes the snapshot's."""

    path: Path
    suffix: str
    owner: str | None = None
    needs_root: bool = False

    mutating = True
    type_name: ClassVar[str] = "move_aside"

    def fields(self) -> tuple[OperationField, ...]:
        return (
            OperationField("path", self.path),
            OperationField("suffix", self.suffix),
            OperationField("owner", self.owner),
            *_shown_state(self),
        )

    def describe(self) -> str:
        return f"move {self.path} aside to {self.path.name}{self.suffix}"


@frozen
class WaitForPort:
    """Verify: something answers on 127.0.0.1:port within the timeout. Changes nothing."""

    port: int
    timeout_s: float

    mutating = False
    needs_root = False
    type_name: ClassVar[str] = "wait_for_port"

    def fields(self) -> tuple[OperationField, ...]:
        return (
            OperationField("port", self.port),
            OperationField("timeout_s", self.timeout_s),
            *_shown_state(self),
        )

    def describe(self) -> str:
        return f"wait until 127.0.0.1:{self.port} answers (up to {self.timeout_s:g} s)"


@frozen
class EnsureSecretEnv:
    """Make sure an env file (`KEY=value` lines) holds `key` with a value generated at apply time.

    For secrets no plan may contain: the value is created by the runner, never read back into
    any output, and kept once it exists (a token is generated once). Other lines are kept. The
    file gets `mode` before its first byte is written.
    """

    path: Path
    key: str
    mode: int = 0o600
    owner: str | None = None
    needs_root: bool = False

    mutating = True
    type_name: ClassVar[str] = "ensure_secret_env"

    def fields(self) -> tuple[OperationField, ...]:
        return (
            OperationField("path", self.path),
            OperationField("key", self.key),
            OperationField("mode", Mode(self.mode)),
            OperationField("owner", self.owner),
            *_shown_state(self),
        )

    def describe(self) -> str:
        return (
            f"ensure {self.path} holds a generated {self.key} (mode {self.mode:04o}; "
            "the value is never shown)"
        )


@frozen
class WarmUp:
    """Start a version's gateway once before a switch, while the old one still serves, so
    its real first start finds the caches its first start fills (docs/updates.md, warm-up).

    As the spec's user (reconciler/shell/switch.py): a transient user unit `unit`
    (`systemd-run --user --collect -p RuntimeMaxSec=...`: systemd ends it, its whole process
    tree, even when the reconciler is killed) runs `program gateway --port <a free port>` with
    the unit's PATH, on a throwaway state directory under `directory` (never the profile's:
    a new release migrates the state it starts on) with HOME there too, so nothing of the
    user's home is touched; the compile caches land where the real unit's gateway looks for
    them (below the user manager's temporary directory, as for the unit). Ready = the
    version's own `gateway health` answers ok within `timeout_s`; then (or at the deadline)
    the unit is stopped with SIGTERM (node writes its compile cache when it exits), and the
    directory removed. A warm-up that fails or times out only costs time: the switch goes on.
    """

    unit: str
    program: tuple[str, ...]
    path_env: str  # the gateway unit's PATH
    env_prefix: str  # CLAWDBOT_ / OPENCLAW_
    config_name: str  # the config file's name in the throwaway state directory
    directory: Path
    timeout_s: float

    @property
    def runtime_max_s(self) -> int:
        """What the transient unit may live: the wait, then its stop (TimeoutStopSec)."""
        return int(self.timeout_s) + WARM_UP_STOP_S + 30

    def fields(self) -> tuple[OperationField, ...]:
        return (
            OperationField("warm_up_unit", self.unit),
            OperationField("warm_up_program", list(self.program)),
            OperationField("warm_up_directory", self.directory),
            OperationField("warm_up_timeout_s", self.timeout_s),
        )

    def describe(self) -> str:
        return (
            f"warm the new version up first while the old one serves (transient user unit "
            f"{self.unit}, a throwaway state directory in {self.directory} and a free port, "
            f"ready within {self.timeout_s:g} s or stopped; a warm-up that fails only costs "
            "time), then "
        )


# A warm-up's gateway gets this long to exit after SIGTERM before systemd kills what is left
# (TimeoutStopSec of the transient unit): node writes its compile cache at exit.
WARM_UP_STOP_S = 30


@frozen
class GatedSwitch:
    """Switch one profile's gateway to another version behind the gateway's own health check.

    The runner (reconciler/shell/switch.py) keeps a copy of the running unit file and of the
    profile's config under `memory` (the reconciler's state, as the user), writes `content` to
    `unit_file`, reloads the user's manager, restarts `unit`, then runs `check` (`<cmd> gateway
    health --json`, token from the profile's env file) until it answers `ok: true`, at most
    `start_timeout_s`; the answer must then hold for `settle_s` (a gateway that answers once
    and crashes is not healthy). Otherwise it restores both copies, reloads, restarts, waits
    for `rollback_check` (the old version's own CLI) and records `to_version` as bad for this
    profile. Either way it reports the downtime: from the restart to the first healthy answer.
    """

    profile: str
    unit: str
    unit_file: Path
    content: str
    config: Path
    check: Command
    rollback_check: Command
    from_version: str | None
    to_version: str
    start_timeout_s: float
    settle_s: float
    memory: Path
    owner: str | None = None
    # The profile's state directory: copied (gateway stopped) before the new version first
    # starts, put back on rollback (a new release migrates state on start; SQLite schemas
    # are not downgraded). None: no copy (a unit-only switch).
    state: Path | None = None
    # A product move (clawdbot -> openclaw, docs/updates.md): the unit of the product it
    # replaces, stopped first and, once `unit` is healthy, disabled and its file removed (a
    # rollback starts it again); `env_file`'s variables renamed from `env_rename[0]` to
    # `env_rename[1]` (values kept: the same token) and `env_token` ensured there.
    replaces: str | None = None
    replaces_file: Path | None = None
    env_file: Path | None = None
    env_rename: tuple[str, str] | None = None
    env_token: str | None = None
    # Started once before the switch, while the old version serves (a version that no unit
    # on the host runs yet); None: nothing to warm up.
    warm_up: WarmUp | None = None

    mutating = True
    needs_root = False
    type_name: ClassVar[str] = "gated_switch"

    def fields(self) -> tuple[OperationField, ...]:
        return (
            OperationField("profile", self.profile),
            OperationField("unit", self.unit),
            OperationField("unit_file", self.unit_file),
            OperationField("config", self.config),
            OperationField("from_version", self.from_version),
            OperationField("to_version", self.to_version),
            OperationField("check", Argv(self.check)),
            OperationField("rollback_check", Argv(self.rollback_check)),
            OperationField("start_timeout_s", self.start_timeout_s),
            OperationField("settle_s", self.settle_s),
            OperationField("memory", self.memory),
            OperationField("owner", self.owner),
            plan_only("state", self.state),
            *self._move_fields(),
            # Absent without a warm-up: such a switch's fingerprint is what it was before.
            *(self.warm_up.fields() if self.warm_up is not None else ()),
            fingerprint_only("content_sha256", Digest(self.content)),
            *_shown_state(self),
        )

    def _move_fields(self) -> tuple[OperationField, ...]:
        if self.replaces is None:
            return ()  # a version switch: its fingerprint as before product moves existed
        return (
            OperationField("replaces", self.replaces),
            OperationField("replaces_file", self.replaces_file),
            OperationField("env_file", self.env_file),
            OperationField("env_rename", list(self.env_rename or ())),
            OperationField("env_token", self.env_token),
        )

    def describe(self) -> str:
        first = self.warm_up.describe() if self.warm_up is not None else ""
        return first + self._describe_switch()

    def _describe_switch(self) -> str:
        old = self.from_version or "the running version"
        if self.replaces is not None:
            renamed = (
                f"rename {self.env_rename[0]}* to {self.env_rename[1]}* in {self.env_file} "
                "(values kept), "
                if self.env_rename
                else ""
            )
            return (
                f"move from {old} ({self.replaces}) to {self.to_version} ({self.unit}): "
                f"stop {self.replaces}, copy {self.state} (the gateway stopped), {renamed}"
                f"write {self.unit_file}, daemon-reload, start {self.unit}, wait up to "
                f"{self.start_timeout_s:g} s for `gateway health` ok (still ok "
                f"{self.settle_s:g} s later), then disable {self.replaces} and remove "
                f"{self.replaces_file}; if unhealthy: {self.unit} removed, the state directory, "
                f"config and {self.replaces} put back and started"
            )
        return (
            f"switch {self.unit} from {old} to {self.to_version}: "
            + (f"stop, copy {self.state} (the gateway stopped), " if self.state else "")
            + f"write {self.unit_file}, daemon-reload, restart, wait up to "
            f"{self.start_timeout_s:g} s for `gateway health` ok (still ok {self.settle_s:g} s "
            f"later); if unhealthy: roll back to {old} (unit and config restored"
            + (", state directory put back" if self.state else "")
            + ")"
        )


@frozen
class InstallVersion:
    """Install one gateway version into `<prefix>/<version>/` as one atomic step.

    In `<prefix>/.install-<version>-<random>/`: write `package_json`, `npm install --prefix`
    (as `scope`'s account; its process tree killed at `timeout_s`), check that
    `<node> <entry> --version` prints `version`, write the completion marker, then rename the
    directory into place. A failure removes the temporary directory; a killed run leaves it
    behind, and the next plan removes it (it is never used).
    """

    prefix: Path
    version: str
    package_json: str
    entry: str  # relative to the version's directory
    npm: str
    node: str
    scope: Literal["system", "user"] = "user"  # user: the user's prefix; system: root's
    timeout_s: float = 900.0
    # Reinstall over a complete install of the same version (its package.json changed): the
    # old directory is renamed aside only at the final rename, so a running gateway keeps its
    # files until then.
    replace: bool = False
    # The reconciler's memory (the spec user's): a failure is recorded there, as the user,
    # so that the timer does not try the same install again (facts/switches.py).
    memory: Path | None = None
    # The entry is a program itself (a node binary, gateway/node.py): checked as
    # `<entry> --version`, not run with `node`.
    runs_alone: bool = False
    # npm runs the installed packages' install scripts even where the user's npm settings say
    # `ignore-scripts=true`: the registry's `node` package has no binary until its own
    # preinstall fetched it (gateway/node.py); its package.json names what may run.
    scripts: bool = False

    mutating = True
    type_name: ClassVar[str] = "install_version"

    @property
    def needs_root(self) -> bool:
        return self.scope == "system"

    def fields(self) -> tuple[OperationField, ...]:
        return (
            OperationField("prefix", self.prefix),
            OperationField("version", self.version),
            OperationField("entry", self.entry),
            OperationField("npm", self.npm),
            OperationField("node", self.node),
            OperationField("scope", self.scope),
            OperationField("replace", self.replace),
            OperationField("runs_alone", self.runs_alone),
            OperationField("scripts", self.scripts),
            plan_only("timeout_s", self.timeout_s),
            plan_only("memory", self.memory),
            fingerprint_only("package_json_sha256", Digest(self.package_json)),
            *_shown_state(self),
        )

    def describe(self) -> str:
        return (
            f"npm install --prefix {self.prefix}/.install-{self.version}-<random> (package.json "
            f"pinning {self.version}), check `{self.entry} --version`, rename to "
            f"{self.prefix}/{self.version}"
            + (" (the installed one renamed aside and removed)" if self.replace else "")
            + (
                " (with the package's install script: --ignore-scripts=false)"
                if self.scripts
                else ""
            )
        )


@frozen
class RemoveTree:
    """Remove a directory tree under `parent` (a version or a leftover), never following a
    symlink: first renamed aside (`.remove-<name>-<random>`), so a half-removed version never
    looks installed, then deleted."""

    parent: Path
    name: str
    scope: Literal["system", "user"] = "user"

    mutating = True
    type_name: ClassVar[str] = "remove_tree"

    @property
    def needs_root(self) -> bool:
        return self.scope == "system"

    def fields(self) -> tuple[OperationField, ...]:
        return (
            OperationField("path", self.parent / self.name),
            OperationField("scope", self.scope),
            *_shown_state(self),
        )

    def describe(self) -> str:
        return f"remove the directory tree {self.parent / self.name}"


@frozen
class BackupProfile:
    """Back up one profile with restic, as the spec's user (`reconciler backup run`).

    The runner (reconciler/shell/backup.py) keeps those of `paths` that exist, looked at as the
    user (restic fails on a missing one, and a new profile may have no workspace yet), and
    appends them to `backup`'s argv; with `unit` (consistency: stop) it stops that gateway
    around the copy when it runs and starts it again; after a complete snapshot it runs
    `forget` (the spec's retention). It reports a `BackupReport` (core/day2.py); the use case
    words it and keeps the record.
    """

    profile: str
    paths: tuple[Path, ...]
    backup: Command
    forget: Command | None = None
    unit: str | None = None

    mutating = True
    needs_root = False
    type_name: ClassVar[str] = "backup_profile"

    def fields(self) -> tuple[OperationField, ...]:
        return (
            OperationField("profile", self.profile),
            OperationField("paths", [str(p) for p in self.paths]),
            OperationField("backup", Argv(self.backup)),
            OperationField("forget", None if self.forget is None else Argv(self.forget)),
            OperationField("unit", self.unit),
            *_shown_state(self),
        )

    def describe(self) -> str:
        stop = f", {self.unit} stopped around the copy" if self.unit else ""
        forget = ", then forget --prune" if self.forget else ""
        return f"restic backup of {self.profile} ({len(self.paths)} paths{stop}){forget}"


@frozen
class RestoreSnapshot:
    """Restore a snapshot beside the live state (`reconciler backup restore`, staging or
    --into): `directory` created (0700) as `owner` and refused when it holds anything, then
    `restore` (`restic restore ID --target DIRECTORY`, as the user). The live state is not
    touched."""

    directory: Path
    restore: Command
    owner: str | None = None

    mutating = True
    needs_root = False
    type_name: ClassVar[str] = "restore_snapshot"

    def fields(self) -> tuple[OperationField, ...]:
        return (
            OperationField("directory", self.directory),
            OperationField("restore", Argv(self.restore)),
            OperationField("owner", self.owner),
            *_shown_state(self),
        )

    def describe(self) -> str:
        return f"restore a snapshot into the fresh directory {self.directory}"


@frozen
class RestoreInPlace:
    """Replace one profile's live state with a snapshot's (`backup restore --in-place`).

    The runner (reconciler/shell/backup.py): stop `unit` when it runs; move each of `paths`
    aside (`MoveAside` with `suffix`, as `owner`); `restore` (`restic restore ID --target /`,
    as the user); the state directory `state` 0700 as `owner` (a symlink restored there is
    refused, not followed); start `unit` again when it was stopped and wait up to
    `start_timeout_s` for 127.0.0.1:`port`. It reports a `RestoreReport` (core/day2.py).
    """

    profile: str
    unit: str
    paths: tuple[Path, ...]
    suffix: str
    state: Path
    restore: Command
    port: int
    start_timeout_s: float
    owner: str | None = None

    mutating = True
    needs_root = False
    type_name: ClassVar[str] = "restore_in_place"

    def fields(self) -> tuple[OperationField, ...]:
        return (
            OperationField("profile", self.profile),
            OperationField("unit", self.unit),
            OperationField("paths", [str(p) for p in self.paths]),
            OperationField("suffix", self.suffix),
            OperationField("state", self.state),
            OperationField("restore", Argv(self.restore)),
            OperationField("port", self.port),
            OperationField("start_timeout_s", self.start_timeout_s),
            OperationField("owner", self.owner),
            *_shown_state(self),
        )

    def describe(self) -> str:
        return (
            f"restore {self.profile} in place: stop {self.unit}, move "
            f"{', '.join(p.name for p in self.paths)} aside (*{self.suffix}), restic restore, "
            f"start {self.unit} and wait for 127.0.0.1:{self.port}"
        )


@frozen
class VerifySnapshot:
    """Check that one profile's snapshot restores (`reconciler backup verify`).

    The runner (reconciler/shell/backup.py) makes a fresh scratch directory as the spec's user
    (under the system's temp directory), runs `restore` (`restic restore ID --verify`, as the
    user) with `--target DIR` appended, then `listing` (`restic ls --json ID`), compares every
    listed file with what was restored (present, same size, same permission bits; lstat as
    the user) and removes the scratch directory as the user. It reports a `VerifyReport`
    (core/day2.py); the use case words it and keeps the record.
    """

    profile: str
    snapshot: str
    short_id: str
    restore: Command
    listing: Command

    mutating = True  # the scratch directory (restic's own repository lock aside)
    needs_root = False
    type_name: ClassVar[str] = "verify_snapshot"

    def fields(self) -> tuple[OperationField, ...]:
        return (
            OperationField("profile", self.profile),
            OperationField("snapshot", self.snapshot),
            plan_only("short_id", self.short_id),
            OperationField("restore", Argv(self.restore)),
            OperationField("listing", Argv(self.listing)),
            *_shown_state(self),
        )

    def describe(self) -> str:
        return (
            f"restore snapshot {self.short_id} of {self.profile} into a scratch directory "
            "(restic --verify), compare every listed file, remove the directory"
        )


@frozen
class WriteTextfile:
    """Replace `directory/name` with `content` (0644, atomically) for node_exporter's textfile
    collector (`backup run`'s metrics): through one descriptor of the folder reached without
    following a symlink through folders only root or the spec's user control
    (shell/anchored.py), as the spec's user when we are root (the folder is theirs to write)."""

    directory: Path
    name: str
    content: str

    mutating = True
    needs_root = False
    type_name: ClassVar[str] = "write_textfile"

    def fields(self) -> tuple[OperationField, ...]:
        return (
            OperationField("directory", self.directory),
            OperationField("name", self.name),
            fingerprint_only("content_sha256", Digest(self.content)),
            *_shown_state(self),
        )

    def describe(self) -> str:
        return f"write {self.directory / self.name} (0644, for node_exporter)"


# --- the reconciler's memory of switches and installs (facts/switches.py) -----------------------
#
# Kept in the spec user's home, so the runner edits it as that user (shell/memory.py). `rollback`
# and `update --retry` plan these; the apply timer never does.


@frozen
class MarkBadVersion:
    """Remember that `profile` must not be switched to `version` again (`reconciler rollback`
    marks the version it left: the spec still pins it, and the timer would switch straight
    back). `at` is when the rollback was decided; `reason` is shown in every later plan."""

    memory: Path
    profile: str
    version: str
    at: str
    reason: str

    mutating = True
    needs_root = False
    type_name: ClassVar[str] = "mark_bad_version"

    def fields(self) -> tuple[OperationField, ...]:
        return (
            OperationField("memory", self.memory),
            OperationField("profile", self.profile),
            OperationField("version", self.version),
            plan_only("at", self.at),
            OperationField("reason", self.reason),
            *_shown_state(self),
        )

    def describe(self) -> str:
        return (
            f"mark {self.version} bad for profile {self.profile} in {self.memory}: neither the "
            "timer nor apply switches to it again"
        )


@frozen
class ForgetBadVersion:
    """Forget `profile`'s bad-version mark (`update --retry`): the apply tries it again. The
    result's detail is "forgotten" when there was one."""

    memory: Path
    profile: str

    mutating = True
    needs_root = False
    type_name: ClassVar[str] = "forget_bad_version"

    def fields(self) -> tuple[OperationField, ...]:
        return (
            OperationField("memory", self.memory),
            OperationField("profile", self.profile),
            *_shown_state(self),
        )

    def describe(self) -> str:
        return f"forget profile {self.profile}'s bad-version mark in {self.memory}"


@frozen
class ForgetFailedInstall:
    """Forget that `version` failed to install (`update --retry`): the apply installs it again.
    The result's detail is "forgotten" when it had failed."""

    memory: Path
    version: str

    mutating = True
    needs_root = False
    type_name: ClassVar[str] = "forget_failed_install"

    def fields(self) -> tuple[OperationField, ...]:
        return (
            OperationField("memory", self.memory),
            OperationField("version", self.version),
            *_shown_state(self),
        )

    def describe(self) -> str:
        return f"forget that {self.version} failed to install ({self.memory})"


Operation = (
    RunCommand
    | WriteFile
    | EnsureDirectory
    | RemoveFile
    | MoveAside
    | WaitForPort
    | EnsureSecretEnv
    | GatedSwitch
    | InstallVersion
    | RemoveTree
    | BackupProfile
    | RestoreSnapshot
    | RestoreInPlace
    | VerifySnapshot
    | WriteTextfile
    | MarkBadVersion
    | ForgetBadVersion
    | ForgetFailedInstall
)
# Derived from the union, so a new operation type is added in one place (the runner's dispatch
# table and plan.schema.json are checked against it by tests/engine/test_operations.py).
OPERATION_TYPES: tuple[type[Operation], ...] = get_args(Operation)


def walk_fields(
    op: Operation, render: Callable[[Any], Any], *, fingerprint: bool
) -> dict[str, Any]:
    """The operation as one document: `type`, then its fields (those of the plan document, or
    those of the fingerprint), each value passed through `render`."""
    out: dict[str, Any] = {"type": op.type_name}
    for item in op.fields():
        if item.in_fingerprint if fingerprint else item.in_plan:
            out[item.name] = render(item.value)
    return out


@frozen
class AttributeChange:
    """One owned attribute that differs: `path` in dotted form, before and after values."""

    path: str
    before: Any
    after: Any
    sensitive: bool = False


@frozen
class Action:
    """One idempotent step of a plan.

    `address` names the resource (`tailscale.serve[443]`); `depends_on` lists addresses that must
    succeed first; `blocked` says why the action cannot run on this host now. `triggers` names
    the handlers (see `Handler`) this action notifies: a unit write triggers the daemon-reload
    and its service's restart. `after` orders it after those addresses when (and only when)
    the plan holds them, as systemd's After= does: the planner adds the ones present to
    `depends_on`. Both are planning data only: no output shows them.
    """

    address: str
    kind: ActionKind
    reason: str
    operations: tuple[Operation, ...] = ()
    changes: tuple[AttributeChange, ...] = ()
    depends_on: tuple[str, ...] = ()
    blocked: str | None = None
    warning: str | None = None
    diff: str | None = None  # a unified diff of a file, when the action writes one
    triggers: tuple[str, ...] = ()
    after: tuple[str, ...] = ()

    @property
    def needs_root(self) -> bool:
        return any(op.needs_root for op in self.operations)

    @property
    def mutating(self) -> bool:
        return any(op.mutating for op in self.operations)


@frozen
class Finding:
    """Something the plan reports but does not change: unmanaged entries, facts, exposures."""

    address: str
    message: str
    severity: Literal["info", "warning", "danger"] = "info"


class PlanError(Exception):
    """A condition that makes the whole plan unsafe (a file we cannot parse, a value that cannot
    be written into a unit). Kinds raise it; the planner turns it into one of `Plan.errors`,
    exactly as it does a `ProbeFailed`."""


class PlanView:
    """The actions planned so far, as a handler sees them (read-only for handlers; indexed,
    so that a 2,000-profile plan's handlers stay linear)."""

    def __init__(self, actions: Iterable[Action] = ()) -> None:
        self._by_address: dict[str, Action] = {}
        self._by_handler: dict[str, list[Action]] = {}
        self.add(actions)

    def add(self, actions: Iterable[Action]) -> None:
        """The planner's: record more planned actions."""
        for action in actions:
            self._by_address.setdefault(action.address, action)
            for handler in action.triggers:
                self._by_handler.setdefault(handler, []).append(action)

    def planned(self, address: str) -> Action | None:
        """The action at `address`, or None when the plan holds none."""
        return self._by_address.get(address)

    def triggering(self, handler: str) -> tuple[Action, ...]:
        """Every action that names `handler` in its `triggers`, in plan order."""
        return tuple(self._by_handler.get(handler, ()))


@frozen
class Handler:
    """An action a kind plans only when the plan calls for it (NixOS restartTriggers, Ansible
    handlers): `build` sees the other kinds' actions (`PlanView`) and returns the handler's part,
    which is empty when nothing triggers `address` and the kind's own host evidence (a stale
    start time, NeedDaemonReload) does not ask for it either. The planner then makes the
    handler's action depend on every action that triggered it.
    """

    address: str
    build: Callable[[PlanView], KindPlan] = field(compare=False)


@frozen
class KindPlan:
    """What one resource kind contributes to a plan."""

    actions: tuple[Action, ...] = ()
    findings: tuple[Finding, ...] = ()
    errors: tuple[str, ...] = field(default=())  # conditions that make the whole plan unsafe
    handlers: tuple[Handler, ...] = ()

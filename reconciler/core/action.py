"""Actions: one idempotent step of a plan, with its address, kind, operations and reasons."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from reconciler.core.command import Command

ActionKind = Literal["create", "update", "delete", "verify"]

# What a change of an attribute looks like to a reviewer. SENSITIVE replaces secret values.
SENSITIVE = "(sensitive)"


@dataclass(frozen=True)
class RunCommand:
    """Run a command on the host."""

    command: Command

    @property
    def mutating(self) -> bool:
        return self.command.mutating

    @property
    def needs_root(self) -> bool:
        return self.command.needs_root

    def describe(self) -> str:
        return self.command.display()


@dataclass(frozen=True)
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

    def describe(self) -> str:
        return f"write {self.path} (mode {self.mode:04o}{', backup kept' if self.backup else ''})"


@dataclass(frozen=True)
class EnsureDirectory:
    """Create a directory (and parents) with this mode and owner, or fix both."""

    path: Path
    mode: int
    owner: str | None = None
    needs_root: bool = False

    mutating = True

    def describe(self) -> str:
        who = f", owner {self.owner}" if self.owner else ""
        return f"ensure directory {self.path} (mode {self.mode:04o}{who})"


@dataclass(frozen=True)
class RemoveFile:
    """Remove a file, keeping a backup beside it."""

    path: Path
    backup: bool = True
    needs_root: bool = False

    mutating = True

    def describe(self) -> str:
        return f"remove {self.path}" + (" (backup kept)" if self.backup else "")


@dataclass(frozen=True)
class WaitForPort:
    """Verify: something answers on 127.0.0.1:port within the timeout. Changes nothing."""

    port: int
    timeout_s: float

    mutating = False
    needs_root = False

    def describe(self) -> str:
        return f"wait until 127.0.0.1:{self.port} answers (up to {self.timeout_s:g} s)"


@dataclass(frozen=True)
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

    def describe(self) -> str:
        return (
            f"ensure {self.path} holds a generated {self.key} (mode {self.mode:04o}; "
            "the value is never shown)"
        )


Operation = RunCommand | WriteFile | EnsureDirectory | RemoveFile | WaitForPort | EnsureSecretEnv


@dataclass(frozen=True)
class AttributeChange:
    """One owned attribute that differs: `path` in dotted form, before and after values."""

    path: str
    before: Any
    after: Any
    sensitive: bool = False


@dataclass(frozen=True)
class Action:
    """One idempotent step of a plan.

    `address` names the resource (`tailscale.serve[443]`); `depends_on` lists addresses that must
    succeed first; `blocked` says why the action cannot run on this host now.
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

    @property
    def needs_root(self) -> bool:
        return any(op.needs_root for op in self.operations)

    @property
    def mutating(self) -> bool:
        return any(op.mutating for op in self.operations)


@dataclass(frozen=True)
class Finding:
    """Something the plan reports but does not change: unmanaged entries, facts, exposures."""

    address: str
    message: str
    severity: Literal["info", "warning", "danger"] = "info"


@dataclass(frozen=True)
class KindPlan:
    """What one resource kind contributes to a plan."""

    actions: tuple[Action, ...] = ()
    findings: tuple[Finding, ...] = ()
    errors: tuple[str, ...] = field(default=())  # conditions that make the whole plan unsafe

"""Backup inventory: per profile, the paths the seed runbook says to back up, and which exist.

docs/host-facts.md §1: the config file, `credentials/`, `agents/` (sessions), `devices/` (pairings),
`identity/`, and the workspace; and our own `gateway.env` (the gateway token). The listing is a pure function of the spec, the host's resolved
paths and an `exists` predicate (the CLI passes the real one); the renderers turn it into text,
JSON, or a restic include file (`restic backup --files-from FILE`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from reconciler.core.host import HostContext
from reconciler.frozen import frozen
from reconciler.gateway.paths import profile_paths
from reconciler.spec.model import Spec

FORMAT_VERSION = "1"
# Inside the state root, in the runbook's order; True: a directory.
STATE_ENTRIES: tuple[tuple[str, bool], ...] = (
    ("credentials", True),
    ("agents", True),
    ("devices", True),
    ("identity", True),
)


@frozen
class BackupPath:
    """One path to back up: what it is, where, and whether it exists now."""

    label: str  # config, gateway.env, credentials, agents, devices, identity, workspace
    path: Path
    directory: bool
    exists: bool


@frozen
class ProfileInventory:
    profile: str
    state: Path
    paths: tuple[BackupPath, ...]


def inventory(
    spec: Spec, host: HostContext, exists: Callable[[Path], bool]
) -> tuple[ProfileInventory, ...]:
    """Every profile's backup-relevant paths, in spec order (pure but for `exists`)."""
    out: list[ProfileInventory] = []
    for profile in spec.profiles:
        paths = profile_paths(spec, profile, host)
        # gateway.env holds the gateway token (auth: token): without it a restored gateway
        # gets a new token and every paired browser must be paired again.
        wanted = [("config", paths.config, False), ("gateway.env", paths.token_env, False)]
        wanted += [(name, paths.state / name, is_dir) for name, is_dir in STATE_ENTRIES]
        wanted.append(("workspace", paths.workspace, True))
        out.append(
            ProfileInventory(
                profile.name,
                paths.state,
                tuple(BackupPath(label, p, is_dir, exists(p)) for label, p, is_dir in wanted),
            )
        )
    return tuple(out)


def render_text(profiles: tuple[ProfileInventory, ...]) -> str:
    lines: list[str] = []
    width = max((len(p.label) for inv in profiles for p in inv.paths), default=0)
    for inv in profiles:
        if lines:
            lines.append("")
        lines.append(f"profile {inv.profile} (state {inv.state})")
        for item in inv.paths:
            mark = "exists " if item.exists else "missing"
            shown = f"{item.path}/" if item.directory else str(item.path)
            lines.append(f"  {mark}  {item.label.ljust(width)}  {shown}")
    return "\n".join(lines) + "\n"


def render_json(profiles: tuple[ProfileInventory, ...], spec: Spec) -> str:
    doc: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "host": spec.host.name,
        "user": spec.host.user,
        "profiles": [
            {
                "name": inv.profile,
                "state_dir": str(inv.state),
                "paths": [
                    {
                        "label": p.label,
                        "path": str(p.path),
                        "directory": p.directory,
                        "exists": p.exists,
                    }
                    for p in inv.paths
                ],
            }
            for inv in profiles
        ],
    }
    return json.dumps(doc, indent=2) + "\n"


_GLOB = re.compile(r"([*?\[\\])")


def restic_line(path: Path) -> str:
    """A path as a `--files-from` line: restic expands globs there, so escape `*?[\\`."""
    return _GLOB.sub(r"\\\1", str(path))


def render_restic(profiles: tuple[ProfileInventory, ...], spec: Spec) -> str:
    """An include file: one absolute path per line; missing paths only as `#` comments.

    restic skips (with a warning) a line that matches nothing; listing only what exists keeps
    its output clean, and the comments say what a later backup would pick up.
    """
    lines = [
        f"# Backup include file for {spec.host.name} (user {spec.host.user}), "
        "from `reconciler state-paths --format restic`.",
        "# Use: restic backup --files-from THIS_FILE",
    ]
    for inv in profiles:
        lines.append(f"# profile {inv.profile}")
        for item in inv.paths:
            lines.append(
                restic_line(item.path) if item.exists else f"# missing: {item.label} {item.path}"
            )
    return "\n".join(lines) + "\n"

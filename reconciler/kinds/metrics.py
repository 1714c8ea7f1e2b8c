"""The metrics textfile directory: where every apply run writes `reconciler.prom` for
node_exporter's textfile collector (reconciler/unattended/metrics.py writes the file).

Wants: with `metrics.textfile_dir` in the spec, that directory exists, is writable by the spec's
user (the reconcile timer runs as that user and writes the file there by temp file + rename) and
readable by everyone (node_exporter runs as its own user, `prometheus` on Debian). Two shapes are
right: owned by root with the user's primary group and mode 0775 (what we create), or owned by
the spec's user with mode 0755 or 0775 (a directory the user made). The file itself is 0644.
Probes: lstat of the directory and of every ancestor that exists (in-process, never followed),
and the name of the user's primary group. Compares: type, owner, group, mode.
Fixes: a missing directory, or a root-owned one with the wrong group or mode (Debian's
`/var/lib/prometheus/node-exporter` is root:root 0755), is one root step:
`install -d -m 0775 -o root -g GROUP DIR` (as root; otherwise through `sudo -n`, or blocked with
the sudoers rule that would allow it, like every root step). A directory of the user's with the
wrong mode is `chmod`-ed as the user. Root acts only along a path nobody else controls: every
existing ancestor must be a real directory (not a symlink) owned by root and writable by root
alone, else it is a plan error naming it (a user who can rename a parent could point root's
`install` anywhere). A symlink or a file at the path is a plan error; a directory another
account owns is never taken over (plan error).
"""

from __future__ import annotations

import grp
import os
import stat
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from reconciler.core.action import Action, EnsureDirectory, KindPlan, RunCommand
from reconciler.core.command import Command
from reconciler.core.diff import attribute_changes
from reconciler.core.host import HostContext
from reconciler.core.kind import NEEDS_USER, NO_FACTS, Kind, register, spec_user
from reconciler.core.probe import Facts, Probe
from reconciler.facts.codec import recorded
from reconciler.frozen import frozen
from reconciler.gateway.addresses import METRICS_DIR
from reconciler.spec.model import Spec

ADDRESS = METRICS_DIR
CREATED_MODE = 0o775  # root:<user's group>: the user's timer writes, everyone reads
USER_MODES = (0o755, 0o775)  # a directory of the user's own: they write, everyone reads

__all__ = ["ADDRESS", "MetricsDirKind", "PathNode", "TextfileDir", "TextfileDirProbe"]


@recorded
@frozen
class PathNode:
    """One path as lstat shows it (a symlink is a symlink, never followed)."""

    path: str
    kind: str  # directory | symlink | file | other | missing
    uid: int | None = None
    gid: int | None = None
    mode: int | None = None  # permission bits

    def root_only(self) -> bool:
        """A real directory only root can change: owned by root, no group or other write (a
        sticky world-writable /tmp still lets anyone create names in it)."""
        return self.kind == "directory" and self.uid == 0 and (self.mode or 0) & 0o022 == 0


@recorded
@frozen
class TextfileDir:
    """The textfile directory, its existing ancestors (from `/` down), the user's group name."""

    node: PathNode
    ancestors: tuple[PathNode, ...]
    group: str


def _lstat(path: str) -> PathNode:
    try:
        info = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return PathNode(path, "missing")
    if stat.S_ISLNK(info.st_mode):
        kind = "symlink"
    elif stat.S_ISDIR(info.st_mode):
        kind = "directory"
    elif stat.S_ISREG(info.st_mode):
        kind = "file"
    else:
        kind = "other"
    return PathNode(path, kind, info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode))


@recorded
@frozen
class TextfileDirProbe(Probe[TextfileDir]):
    """lstat of `path` and of each ancestor that exists; the name of group `gid`."""

    path: str
    gid: int

    def read(self, host: HostContext) -> TextfileDir:
        ancestors = []
        for parent in reversed(Path(self.path).parents):
            node = _lstat(str(parent))
            if node.kind == "missing":
                break
            ancestors.append(node)
            if node.kind != "directory":
                break
        try:
            group = grp.getgrgid(self.gid).gr_name
        except KeyError:
            group = str(self.gid)
        return TextfileDir(_lstat(self.path), tuple(ancestors), group)


@register(110)
class MetricsDirKind(Kind):
    name = "metrics.textfile_dir"
    needs = NEEDS_USER  # the directory's group is the user's

    def placeholders(self, spec: Spec, host: HostContext) -> Iterable[Action]:
        if spec.metrics is not None:
            path = spec.metrics.textfile_dir
            yield Action(
                ADDRESS, "create", _why(path), (RunCommand(_install(path, host.user_name)),)
            )

    def desired(self, spec: Spec, home: Path) -> Mapping[str, Any]:
        """The textfile directory every run writes its metrics file into."""
        if spec.metrics is None:
            return {}
        return {"metrics": {"textfile_dir": spec.metrics.textfile_dir}}

    def probes(
        self, spec: Spec, host: HostContext, found: Facts = NO_FACTS
    ) -> Iterable[Probe[Any]]:
        if spec.metrics is not None:
            yield TextfileDirProbe(spec.metrics.textfile_dir, spec_user(host).gid)

    def plan(self, spec: Spec, host: HostContext, facts: Facts) -> KindPlan:
        if spec.metrics is None:
            return KindPlan()
        path = spec.metrics.textfile_dir
        found = facts.get(TextfileDirProbe(path, spec_user(host).gid))
        try:
            action = plan_dir(path, host, found)
        except ValueError as exc:
            return KindPlan(errors=(f"{ADDRESS}: {exc}",))
        return KindPlan(actions=(action,) if action is not None else ())


def _why(path: str) -> str:
    return (
        f"every apply run writes reconciler.prom in {path} for node_exporter "
        "(the timer's runs as the spec's user)"
    )


def _install(path: str, group: str) -> Command:
    return Command(
        ("install", "-d", "-m", f"{CREATED_MODE:04o}", "-o", "root", "-g", group, path),
        needs_root=True,
        mutating=True,
    )


def _shown(node: PathNode, group: str, user: str, uid: int, gid: int) -> dict[str, Any]:
    """Owner, group and mode as a plan shows them ({} when missing)."""
    if node.kind == "missing":
        return {}
    owner = user if node.uid == uid else "root" if node.uid == 0 else str(node.uid)
    return {
        "owner": owner,
        "group": group if node.gid == gid else "root" if node.gid == 0 else str(node.gid),
        "mode": f"{node.mode or 0:04o}",
    }


def plan_dir(path: str, host: HostContext, found: TextfileDir) -> Action | None:
    """The step that makes the directory right, None when it is; ValueError: refused."""
    assert host.user is not None
    user, node = host.user, found.node
    if node.kind in ("symlink", "file", "other"):
        what = "a symlink" if node.kind == "symlink" else "not a directory"
        raise ValueError(
            f"{path} is {what}; the metrics directory must be a real directory (nothing "
            "follows or replaces it: move it away, or point metrics.textfile_dir elsewhere)"
        )
    shown = _shown(node, found.group, user.name, user.uid, user.gid)
    if node.kind == "directory" and node.uid == user.uid:
        if node.mode in USER_MODES:
            return None
        # The user's own directory: they fix it themselves (as_user), no root needed.
        return Action(
            ADDRESS,
            "update",
            f"{path} must be readable by node_exporter and writable by {user.name}",
            (EnsureDirectory(Path(path), 0o755, user.name),),
            changes=attribute_changes({**shown, "mode": "0755"}, shown),
        )
    if node.kind == "directory" and node.uid != 0:
        raise ValueError(
            f"{path} belongs to uid {node.uid}, neither root nor {user.name}; refusing to "
            f"take it over (chown it to root or {user.name} yourself, or point "
            "metrics.textfile_dir elsewhere)"
        )
    if node.kind == "directory" and node.gid == user.gid and node.mode == CREATED_MODE:
        return None
    unsafe = next((a for a in found.ancestors if not a.root_only()), None)
    if unsafe is not None:
        raise ValueError(
            f"{unsafe.path} ({unsafe.kind}, uid {unsafe.uid}, mode {unsafe.mode or 0:04o}) is "
            f"not a directory only root can change; root will not create or change {path} "
            "below it (choose a directory under a root-owned tree, e.g. "
            "/var/lib/prometheus/node-exporter)"
        )
    wanted = {"owner": "root", "group": found.group, "mode": f"{CREATED_MODE:04o}"}
    return Action(
        ADDRESS,
        "create" if node.kind == "missing" else "update",
        _why(path),
        (RunCommand(_install(path, found.group)),),
        changes=attribute_changes(wanted, shown),
    )
